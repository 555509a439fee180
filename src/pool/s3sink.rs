//! The S3 sink: stores each mail as an SES receipt rule with an S3 action does — the raw message, with
//! the headers SES adds on receipt, under `prefix + message id`.

use anyhow::Context;
use aws_sdk_s3::primitives::ByteStream;

use super::config::S3SinkConfig;

/// A connected S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Sink {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    region: String,
}

impl S3Sink {
    /// Builds the client (static test credentials, path-style addressing) and creates the bucket if asked.
    pub async fn connect(config: &S3SinkConfig) -> anyhow::Result<Self> {
        let credentials = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "otp-harness-local-pool");
        let s3_config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(config.region.clone()))
            .endpoint_url(&config.endpoint_url)
            .credentials_provider(credentials)
            .force_path_style(true)
            .build();
        let client = aws_sdk_s3::Client::from_conf(s3_config);
        let created = match config.create_bucket {
            true => client.create_bucket().bucket(&config.bucket).send().await.err(),
            false => None,
        };
        if let Some(e) = created {
            let owned = e
                .as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists());
            if !owned {
                return Err(anyhow::Error::new(e))
                    .with_context(|| format!("creating bucket {} at {}", config.bucket, config.endpoint_url));
            }
        }
        Ok(Self { client, bucket: config.bucket.clone(), prefix: config.prefix.clone(), region: config.region.clone() })
    }

    /// Stores one received mail under `prefix + id`.
    pub async fn store(&self, id: &str, from: &str, to: &str, date: &str, message: &[u8]) -> anyhow::Result<()> {
        let received = format!(
            "Return-Path: <{from}>\r\n\
             Received: from localpool.otp-harness.test (localpool [127.0.0.1])\r\n \
             by inbound-smtp.{region}.amazonaws.com with SMTP id {id}\r\n \
             for {to};\r\n {date}\r\n\
             X-SES-Spam-Verdict: PASS\r\n\
             X-SES-Virus-Verdict: PASS\r\n",
            region = self.region
        );
        let mut body = received.into_bytes();
        body.extend_from_slice(message);
        let key = format!("{}{id}", self.prefix);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(body))
            .send()
            .await
            .with_context(|| format!("storing s3://{}/{key}", self.bucket))?;
        Ok(())
    }
}
