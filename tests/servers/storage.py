"""An independent client for the sync tests and bench/sync.sh: creates buckets and containers on
the local moto and Azurite servers, and lists objects with their
SHA-256, size and metadata, as JSON on stdout. Uses boto3 and azure-storage-blob (the services'
own SDKs), so what the tests check is what another program sees, not what pixelflow thinks.

    storage.py s3 ENDPOINT create BUCKET      (no error when it exists)
    storage.py s3 ENDPOINT list BUCKET [PREFIX]
    storage.py az CONNECTION_STRING create CONTAINER
    storage.py az CONNECTION_STRING list CONTAINER [PREFIX]
"""
import hashlib
import json
import sys


def s3(endpoint, command, bucket, prefix=""):
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
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


def az(connection_string, command, container, prefix=""):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(connection_string)
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
