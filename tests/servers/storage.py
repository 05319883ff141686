"""An independent client for the sync tests and bench/sync.sh: creates buckets and containers on
the local moto and Azurite servers, and lists objects with their
SHA-256, size and metadata, as JSON on stdout. Uses boto3 and azure-storage-blob (the services'
own SDKs), so what the tests check is what another program sees, not what pixelflow thinks.

    storage.py s3 ENDPOINT create BUCKET      (no error when it exists)
    storage.py s3 ENDPOINT list BUCKET [PREFIX]
    storage.py s3 ENDPOINT users BUCKET       (IAM users, then moto's auth on; see below)
    storage.py az CONNECTION_STRING create CONTAINER
    storage.py az CONNECTION_STRING list CONTAINER [PREFIX]
    storage.py az CONNECTION_STRING sas CONTAINER PERMISSIONS   (a container SAS, e.g. `rl`)

`users` creates BUCKET, an IAM user `reader` allowed only s3:GetObject and s3:ListBucket and a
user `admin` allowed s3:*, prints their keys ({"reader": {"id", "secret"}, "admin": ...}), and
then turns moto's IAM authentication on (POST /moto-api/reset-auth 0: moto checks every later
request's key, signature and policy, as AWS does). S3 calls use the keys in STORAGE_KEY_ID and
STORAGE_SECRET when set (moto's default is to accept any).
"""
import hashlib
import json
import os
import sys
import urllib.request


def s3(endpoint, command, bucket, prefix=""):
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ.get("STORAGE_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("STORAGE_SECRET", "testing"),
    )
    if command == "users":
        return s3_users(endpoint, client, bucket)
    if command == "create":
        try:
            client.create_bucket(Bucket=bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        return None
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            got = client.get_object(Bucket=bucket, Key=o["Key"])
            body = got["Body"].read()
            out.append({
                "key": o["Key"],
                "size": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "etag": got["ETag"],
                "contentType": got.get("ContentType"),
                "cacheControl": got.get("CacheControl"),
                "metadata": got.get("Metadata", {}),
            })
    return out


def s3_users(endpoint, s3_client, bucket):
    import boto3

    s3_client.create_bucket(Bucket=bucket)
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    keys = {}
    for user, actions in [("reader", ["s3:GetObject", "s3:ListBucket"]), ("admin", ["s3:*"])]:
        iam.create_user(UserName=user)
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
        iam.put_user_policy(UserName=user, PolicyName=f"{user}-s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"})).read()
    return keys


def az(connection_string, command, container, prefix=""):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(connection_string)
    if command == "sas":
        from datetime import datetime, timedelta, timezone

        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        return generate_container_sas(
            service.account_name,
            container,
            account_key=service.credential.account_key,
            permission=ContainerSasPermissions.from_string(prefix),
            expiry=datetime.now(timezone.utc) + timedelta(hours=1),
        )
    if command == "create":
        from azure.core.exceptions import ResourceExistsError

        try:
            service.create_container(container)
        except ResourceExistsError:
            pass
        return None
    client = service.get_container_client(container)
    out = []
    for b in client.list_blobs(name_starts_with=prefix or None, include=["metadata"]):
        body = client.download_blob(b.name).readall()
        out.append({
            "key": b.name,
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "etag": b.etag,
            "contentType": b.content_settings.content_type,
            "cacheControl": b.content_settings.cache_control,
            "metadata": b.metadata or {},
        })
    return out


def main():
    service, where, command, name, *rest = sys.argv[1:]
    result = {"s3": s3, "az": az}[service](where, command, name, *rest)
    if result is not None:
        json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
