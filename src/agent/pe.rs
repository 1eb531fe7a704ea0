//! What a Windows program says about itself: the vendor (CompanyName) and product
//! (ProductName) of its version resource, read from the bytes that will run with the pelite
//! crate, so the same code is tested on Linux against real PE files. A file that is not a PE
//! image, has no version resource or a garbled one yields nothing (the policy then matches on
//! hash and path alone), never an error or a panic.

use pelite::PeFile;

/// (vendor, product), empty where the resource does not say.
pub fn version_strings(bytes: &[u8]) -> Option<(String, String)> {
    let pe = PeFile::from_bytes(bytes).ok()?;
    let info = pe.resources().ok()?.version_info().ok()?;
    // The first translation the file lists; files without one are read as US English/Unicode.
    let lang =
        info.translation()
            .first()
            .copied()
            .unwrap_or(pelite::resources::version_info::Language {
                lang_id: 0x0409,
                charset_id: 0x04b0,
            });
    let clean = |v: Option<String>| {
        v.unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect::<String>()
            .trim()
            .to_string()
    };
    let vendor = clean(info.value(lang, "CompanyName"));
    let product = clean(info.value(lang, "ProductName"));
    (!vendor.is_empty() || !product.is_empty()).then_some((vendor, product))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anything_that_is_not_a_pe_with_a_version_resource_says_nothing() {
        assert_eq!(version_strings(b""), None);
        assert_eq!(version_strings(b"MZ"), None);
        assert_eq!(version_strings(&[0xffu8; 4096]), None);
        let mut garbled = b"MZ".to_vec();
        garbled.extend(std::iter::repeat_n(0x41u8, 8192));
        assert_eq!(version_strings(&garbled), None);
    }
}
