//! How a Cognito call failed: the error's class from its `__type` (throttling kept apart from
//! refusals, trigger failures, time-outs and transport errors), its type and Cognito's own message.

use std::fmt;

use aws_sdk_cognitoidentityprovider::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// How a failed call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorClass {
    /// TooManyRequestsException: kept apart from failures.
    Throttled,
    NotAuthorized,
    /// CodeMismatchException: a wrong EMAIL_OTP code (the session stays usable).
    CodeMismatch,
    UserNotFound,
    /// A trigger failed (UserLambdaValidation, InvalidLambdaResponse, UnexpectedLambda).
    Lambda,
    InvalidParameter,
    ResourceNotFound,
    /// Any other service error.
    Service,
    /// No answer in time.
    Timeout,
    /// Connection refused, DNS, TLS, a malformed answer.
    Transport,
}

/// A failed Cognito call: its class, `__type` and message (Cognito's own words; never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub class: ErrorClass,
    pub type_name: String,
    pub message: String,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.type_name, self.message)
    }
}

impl std::error::Error for CallError {}

impl CallError {
    pub fn from_sdk<E: ProvideErrorMetadata + std::error::Error + 'static, R: fmt::Debug>(err: SdkError<E, R>) -> Self {
        if let Some(service) = err.as_service_error() {
            let type_name = service.code().unwrap_or("UnknownError").to_string();
            let class = match type_name.as_str() {
                t if is_throttling(t) => ErrorClass::Throttled,
                "NotAuthorizedException" => ErrorClass::NotAuthorized,
                "CodeMismatchException" => ErrorClass::CodeMismatch,
                "UserNotFoundException" => ErrorClass::UserNotFound,
                "UserLambdaValidationException" | "InvalidLambdaResponseException" | "UnexpectedLambdaException" => {
                    ErrorClass::Lambda
                }
                "InvalidParameterException" => ErrorClass::InvalidParameter,
                "ResourceNotFoundException" => ErrorClass::ResourceNotFound,
                _ => ErrorClass::Service,
            };
            return Self { class, type_name, message: service.message().unwrap_or("").to_string() };
        }
        let (class, type_name) = match &err {
            SdkError::TimeoutError(_) => (ErrorClass::Timeout, "Timeout"),
            SdkError::DispatchFailure(d) if d.is_timeout() => (ErrorClass::Timeout, "Timeout"),
            _ => (ErrorClass::Transport, "TransportError"),
        };
        Self { class, type_name: type_name.to_string(), message: DisplayErrorContext(&err).to_string() }
    }
}

impl CallError {
    /// A service error that is the pool's answer to the request (not throttling, a trigger or
    /// transport failure).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self.class,
            ErrorClass::NotAuthorized
                | ErrorClass::CodeMismatch
                | ErrorClass::UserNotFound
                | ErrorClass::InvalidParameter
                | ErrorClass::ResourceNotFound
                | ErrorClass::Service
        )
    }
}

impl CallError {
    /// Which pool or app-client setting to change, for errors that mean the pool is not set up for the
    /// flow the scenario signs in with.
    pub fn hint(&self) -> Option<&'static str> {
        match (self.class, self.message.as_str()) {
            (ErrorClass::InvalidParameter, m) if m.contains("USER_AUTH flow not enabled") => Some(
                "the app client does not allow USER_AUTH: add ALLOW_USER_AUTH to its ExplicitAuthFlows (auth = \"email_otp\")",
            ),
            (ErrorClass::InvalidParameter, m) if m.contains("CUSTOM_AUTH flow not enabled") => {
                Some("the app client does not allow CUSTOM_AUTH: add ALLOW_CUSTOM_AUTH to its ExplicitAuthFlows")
            }
            (ErrorClass::Lambda, m) if m.contains("Missing final '@domain'") => Some(
                "a trigger mailed an address SES refuses (\"Missing final '@domain'\"): in a pool whose users sign in by \
                 email (UsernameAttributes = email), event.userName is the user's internal UUID, not the address — \
                 mail event.request.userAttributes.email",
            ),
            (_, _) if self.type_name == EMAIL_OTP_NOT_OFFERED => Some(
                "the pool does not offer EMAIL_OTP: add EMAIL_OTP to its Policies.SignInPolicy.AllowedFirstAuthFactors (Essentials tier or higher)",
            ),
            _ => None,
        }
    }
}

/// The error type the harness gives a USER_AUTH sign-in whose SELECT_CHALLENGE lacks EMAIL_OTP.
pub const EMAIL_OTP_NOT_OFFERED: &str = "EmailOtpNotOffered";

/// The error types Cognito throttles with (counted apart from failures everywhere).
pub fn is_throttling(type_name: &str) -> bool {
    matches!(type_name, "TooManyRequestsException" | "LimitExceededException")
}
