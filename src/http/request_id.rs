//! The id of the request being served: set by the portal's middleware (`web::headers`),
//! echoed by both edges' error answers.

/// The id of the request being served, in request extensions and the `X-Request-Id` header.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

tokio::task_local! {
    /// Lets error rendering echo the request id without threading it through every handler.
    pub static CURRENT_REQUEST_ID: String;
}

pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}
