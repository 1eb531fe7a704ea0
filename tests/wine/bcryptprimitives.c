/* Wine 8.0 (Debian 12) has no bcryptprimitives.dll, which Rust's standard library imports
 * for ProcessPrng (Windows 10 and later ship it). The Wine test installs this stand-in into
 * its own Wine prefix only: ProcessPrng over RtlGenRandom (advapi32!SystemFunction036).
 * It is never part of what Hourglass ships. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG n = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        length -= n;
    }
    return TRUE;
}
