//! The S3 source: the bucket and prefix an SES receipt rule with an S3 action writes to. Lists new keys,
//! takes them oldest first (LastModified), fetches and parses each, then deletes or keeps it. Listing is
//! adaptive: every `poll_interval` while virtual users wait for codes, every `idle_poll_interval` while
//! none do (a user starting to wait cuts that short), so an idle run costs almost no requests. Several
//! prefixes (`prefixes`) are each listed by a watcher of their own. LastModified is whole seconds, so a
//! listed mail is not dated for `otp_pickup` (an error of up to a second would swamp a pickup of a few
//! milliseconds); the push path (`sqs`: S3 event notifications, dated to the millisecond) records it.

use std::sync::Arc;

use aws_sdk_s3::error::DisplayErrorContext;

use super::{Extractor, Mailroom, SeenIds, SourceError, deliver};
use crate::background::CancellationToken;
use crate::scenario::{AfterRead, S3Options};

pub struct S3Watcher {
    client: aws_sdk_s3::Client,
    options: S3Options,
    extractor: Extractor,
    seen: SeenIds,
}

/// The AWS configuration the S3 source's clients start from: the standard credential chain, the
/// scenario's region (default: the target's) and, when set, its `endpoint_url`.
pub async fn aws_config(options: &S3Options, target_region: &str) -> aws_config::SdkConfig {
    let region = aws_config::Region::new(options.region.clone().unwrap_or_else(|| target_region.to_string()));
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region);
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The S3 client of the source (path-style addressing with a custom endpoint).
pub fn s3_client(shared: &aws_config::SdkConfig, options: &S3Options) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(shared);
    if options.endpoint_url.is_some() {
        builder = builder.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

impl S3Watcher {
    /// Builds the client (standard credential chain; path-style with a custom endpoint) and lists the
    /// bucket once: it must answer, and what it holds now is old mail.
    pub async fn connect(options: S3Options, target_region: &str, extractor: Extractor) -> Result<Self, SourceError> {
        let shared = aws_config(&options, target_region).await;
        Self::with_config(options, &shared, extractor).await
    }

    /// As `connect`, with the AWS configuration given (benchmarks: static credentials).
    pub async fn with_config(
        options: S3Options,
        shared: &aws_config::SdkConfig,
        extractor: Extractor,
    ) -> Result<Self, SourceError> {
        let client = s3_client(shared, &options);
        let mut watcher = Self { client, options, extractor, seen: SeenIds::default() };
        let existing = watcher.list().await.map_err(|e| SourceError::new("s3", e))?;
        for (key, _) in existing {
            watcher.seen.insert(&key);
        }
        Ok(watcher)
    }

    /// Every key under the prefix with its LastModified (epoch ms), oldest first.
    async fn list(&self) -> Result<Vec<(String, i64)>, String> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.options.bucket)
                .prefix(&self.options.prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    format!("listing s3://{}/{}: {}", self.options.bucket, self.options.prefix, DisplayErrorContext(&e))
                })?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    let modified = object.last_modified().and_then(|t| t.to_millis().ok()).unwrap_or(0);
                    out.push((key.to_string(), modified));
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    async fn fetch(&self, key: &str) -> Result<Vec<u8>, String> {
        let object = self
            .client
            .get_object()
            .bucket(&self.options.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| format!("getting {key}: {}", DisplayErrorContext(&e)))?;
        let bytes = object.body.collect().await.map_err(|e| format!("reading {key}: {e}"))?.into_bytes();
        Ok(bytes.to_vec())
    }

    /// Deletes a code mail once read, when asked to (other objects are left alone).
    async fn dispose(&self, key: &str) {
        if self.options.after_read == AfterRead::Delete
            && let Err(e) = self.client.delete_object().bucket(&self.options.bucket).key(key).send().await
        {
            tracing::warn!(error = %DisplayErrorContext(&e), "could not delete a read mail from S3");
        }
    }

    /// Polls until stopped.
    pub async fn run(mut self, mailroom: Arc<Mailroom>, stop: CancellationToken) {
        mailroom.set_mode(format!(
            "poll: a listing every {:?} while users wait, every {:?} otherwise",
            self.options.poll_interval, self.options.idle_poll_interval
        ));
        let mut failing = false;
        loop {
            if mailroom.waiting() > 0 {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(self.options.poll_interval) => {}
                }
            } else {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(self.options.idle_poll_interval) => {}
                    _ = mailroom.someone_waits() => {}
                }
            }
            mailroom.count_request();
            let keys = match self.list().await {
                Ok(keys) => keys,
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "S3 poll failed; retrying");
                    }
                    failing = true;
                    continue;
                }
            };
            if failing {
                mailroom.count_reconnect();
                failing = false;
            }
            for (key, _) in keys {
                if self.seen.contains(&key) {
                    continue;
                }
                match self.fetch(&key).await {
                    Ok(raw) => {
                        self.seen.insert(&key);
                        if deliver(&mailroom, self.extractor.extract(&raw)) {
                            self.dispose(&key).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "S3 mail could not be read; retrying"),
                }
            }
        }
    }
}
