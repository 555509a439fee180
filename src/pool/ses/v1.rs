//! SES v1 on the wire (the query protocol): `POST /` with a form body naming an `Action` — SendEmail,
//! SendRawEmail, GetSendQuota, GetAccountSendingEnabled — answered in XML, errors in an XML `ErrorResponse`. It shares `POST /`
//! with Cognito, which names its operation in `X-Amz-Target`: `is_query_request` tells them apart.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::{SendContent, SendRequest, SesError, SesErrorKind, form_pairs};
use crate::pool::PoolState;

const XMLNS: &str = "http://ses.amazonaws.com/doc/2010-12-01/";

/// An SES v1 request: no `X-Amz-Target`, a form Content-Type, and an `Action` in the body. Anything
/// else on `POST /` is Cognito's, answered as before.
pub fn is_query_request(headers: &HeaderMap, body: &[u8]) -> bool {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    !headers.contains_key("x-amz-target") && form && form_pairs(body).iter().any(|(k, _)| k == "Action")
}

/// The query parameters of one request.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, SesError> {
        self.get(name).ok_or_else(|| SesError::new(SesErrorKind::BadRequest, format!("{name} is required.")))
    }

    /// `prefix.member.1`, `prefix.member.2`, … in order of N.
    fn members(&self, prefix: &str) -> Vec<String> {
        let head = format!("{prefix}.member.");
        let mut found: Vec<(u32, String)> =
            self.0.iter().filter_map(|(k, v)| Some((k.strip_prefix(&head)?.parse().ok()?, v.clone()))).collect();
        found.sort_by_key(|(n, _)| *n);
        found.into_iter().map(|(_, v)| v).collect()
    }
}

/// Answers one v1 request.
pub async fn handle(pool: &PoolState, body: &[u8]) -> Response {
    let params = Params(form_pairs(body));
    let action = params.get("Action").unwrap_or("").to_string();
    let request_id = uuid::Uuid::new_v4().to_string();
    let (operation, result) = match action.as_str() {
        "SendEmail" => ("v1:SendEmail", send_email(pool, &params)),
        "SendRawEmail" => ("v1:SendRawEmail", send_raw_email(pool, &params)),
        "GetSendQuota" => ("v1:GetSendQuota", get_send_quota(pool)),
        "GetAccountSendingEnabled" => ("v1:GetAccountSendingEnabled", get_account_sending_enabled(pool)),
        _ => {
            // The query protocol's common error for an unknown action.
            let message = "The action or operation requested is invalid. Verify that the action is typed correctly.";
            return error_xml(pool, StatusCode::BAD_REQUEST, "InvalidAction", message, &request_id);
        }
    };
    pool.ses.count_request(operation);
    match result {
        Ok(inner) => {
            let xml = format!(
                "<{action}Response xmlns=\"{XMLNS}\">\n  <{action}Result>{inner}</{action}Result>\n  \
                 <ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>\n</{action}Response>\n"
            );
            xml_response(StatusCode::OK, xml, &request_id)
        }
        Err(error) => {
            let (status, code) = status_and_code(error.kind);
            error_xml(pool, status, code, &error.message, &request_id)
        }
    }
}

/// The status and error code SES v1 sends for `kind`.
fn status_and_code(kind: SesErrorKind) -> (StatusCode, &'static str) {
    match kind {
        SesErrorKind::BadRequest | SesErrorKind::NotFound | SesErrorKind::InvalidNextToken => {
            (StatusCode::BAD_REQUEST, "InvalidParameterValue")
        }
        SesErrorKind::MessageRejected => (StatusCode::BAD_REQUEST, "MessageRejected"),
        SesErrorKind::SendingPaused | SesErrorKind::AccountSuspended => {
            (StatusCode::BAD_REQUEST, "AccountSendingPausedException")
        }
        // Both quotas: `Throttling` with SES's message (awsdocs/amazon-ses-developer-guide #60).
        SesErrorKind::MaxSendRateExceeded | SesErrorKind::DailyQuotaExceeded => (StatusCode::BAD_REQUEST, "Throttling"),
        // The query protocol's code for an IAM refusal.
        SesErrorKind::AccessDenied => (StatusCode::FORBIDDEN, "AccessDenied"),
    }
}

fn error_xml(pool: &PoolState, status: StatusCode, code: &str, message: &str, request_id: &str) -> Response {
    pool.ses.count_error(code);
    let xml = format!(
        "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>{code}</Code>\n    \
         <Message>{}</Message>\n  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
        escape_xml(message)
    );
    xml_response(status, xml, request_id)
}

fn xml_response(status: StatusCode, xml: String, request_id: &str) -> Response {
    let mut response = (status, xml).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", v);
    }
    response
}

fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

fn send_email(pool: &PoolState, params: &Params) -> Result<String, SesError> {
    let request = SendRequest {
        from: Some(params.required("Source")?.to_string()),
        to: params.members("Destination.ToAddresses"),
        cc: params.members("Destination.CcAddresses"),
        bcc: params.members("Destination.BccAddresses"),
        reply_to: params.members("ReplyToAddresses"),
        content: SendContent::Simple {
            subject: params.required("Message.Subject.Data")?.to_string(),
            text: params.get("Message.Body.Text.Data").map(str::to_string),
            html: params.get("Message.Body.Html.Data").map(str::to_string),
        },
    };
    let id = pool.ses.send("SendEmail", request)?;
    Ok(format!("<MessageId>{}</MessageId>", escape_xml(&id)))
}

fn send_raw_email(pool: &PoolState, params: &Params) -> Result<String, SesError> {
    let data = params.required("RawMessage.Data")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| SesError::bad_request("RawMessage.Data is not valid base64."))?;
    let request = SendRequest {
        from: params.get("Source").map(str::to_string),
        to: params.members("Destinations"),
        cc: Vec::new(),
        bcc: Vec::new(),
        reply_to: Vec::new(),
        content: SendContent::Raw(raw),
    };
    let id = pool.ses.send("SendRawEmail", request)?;
    Ok(format!("<MessageId>{}</MessageId>", escape_xml(&id)))
}

fn get_send_quota(pool: &PoolState) -> Result<String, SesError> {
    pool.ses.deny("GetSendQuota", None)?;
    let a = pool.ses.account();
    // Doubles as SES writes them: `200.0`.
    Ok(format!(
        "<Max24HourSend>{:?}</Max24HourSend><MaxSendRate>{:?}</MaxSendRate><SentLast24Hours>{:?}</SentLast24Hours>",
        a.max_24_hour_send, a.max_send_rate, a.sent_last_24_hours
    ))
}

fn get_account_sending_enabled(pool: &PoolState) -> Result<String, SesError> {
    pool.ses.deny("GetAccountSendingEnabled", None)?;
    Ok(format!("<Enabled>{}</Enabled>", pool.ses.account().sending_enabled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_form_with_an_action_and_no_target_is_ses() {
        let form = |target: bool| {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"));
            if target {
                h.insert("x-amz-target", HeaderValue::from_static("AWSCognitoIdentityProviderService.GetUser"));
            }
            h
        };
        assert!(is_query_request(&form(false), b"Action=GetSendQuota&Version=2010-12-01"));
        assert!(!is_query_request(&form(true), b"Action=GetSendQuota"));
        assert!(!is_query_request(&form(false), b"{\"AuthFlow\":\"CUSTOM_AUTH\"}"));
        assert!(!is_query_request(&HeaderMap::new(), b"Action=GetSendQuota"));
        let params = Params(form_pairs(b"D.member.2=b&D.member.1=a&D.member.x=c&Other=1"));
        assert_eq!(params.members("D"), ["a", "b"]);
        assert_eq!(escape_xml("a<b&'c'"), "a&lt;b&amp;&apos;c&apos;");
    }
}
