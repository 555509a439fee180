"""S3 → SNS → SQS on moto, as users route S3 events through a topic: creates the bucket, a topic, a
standard queue subscribed to the topic (no raw message delivery, so SQS gets SNS's envelope) and the
bucket's notification of ObjectCreated events under a prefix to the topic. Prints the queue URL.

Usage: s3_events_via_sns.py ENDPOINT BUCKET PREFIX NAME   (NAME names the topic and the queue)
"""

import sys

import boto3

endpoint, bucket, prefix, name = sys.argv[1:5]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
s3, sns, sqs = (boto3.client(service, **kw) for service in ("s3", "sns", "sqs"))

s3.create_bucket(Bucket=bucket)
# A short visibility timeout: a message the harness leaves in the queue comes back during the run.
queue_url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
topic_arn = sns.create_topic(Name=name)["TopicArn"]
sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
s3.put_bucket_notification_configuration(
    Bucket=bucket,
    NotificationConfiguration={
        "TopicConfigurations": [
            {
                "TopicArn": topic_arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
            }
        ]
    },
)
print(queue_url)
