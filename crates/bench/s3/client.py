"""The S3 side of `peervault-bench s3`: an upload (OP=put) of FILE or a
download (OP=get) of it through boto3's transfer manager (multipart, parts
of PART_MIB in parallel, its default concurrency of 10), or a download as one
stream (OP=stream: GetObject, the body read to its end), timed and printed as
`OP SECONDS`.

Environment: S3_ENDPOINT, BUCKET, KEY (the object), FILE, OP, PART_MIB, and
the access key in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.

Payloads are sent unsigned (`payload_signing_enabled: False`) and without the
extra CRC32 header: over plain HTTP boto3 would otherwise hash every byte twice
in Python before sending it, which measures the client, not the gateway. The
gateway still checks each part's MD5 (its ETag) and the vault its own hashes.
"""

import io
import os
import time

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

PART = int(os.environ.get("PART_MIB", "8")) << 20


class Sink(io.RawIOBase):
    """A seekable file that keeps nothing (the native `get` writes to a sink too)."""

    def __init__(self):
        self.pos = 0
        self.written = 0

    def writable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=io.SEEK_SET):
        self.pos = offset if whence == io.SEEK_SET else self.pos + offset
        return self.pos

    def write(self, data):
        self.pos += len(data)
        self.written += len(data)
        return len(data)


s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["S3_ENDPOINT"],
    region_name="us-east-1",
    config=Config(
        s3={"payload_signing_enabled": False},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=32,
    ),
)
transfer = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART)
bucket, key, path = os.environ["BUCKET"], os.environ["KEY"], os.environ["FILE"]
size = os.path.getsize(path)
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass

if os.environ["OP"] == "put":
    start = time.perf_counter()
    s3.upload_file(path, bucket, key, Config=transfer)
    print(f"put {time.perf_counter() - start:.6f}", flush=True)
elif os.environ["OP"] == "stream":
    start = time.perf_counter()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    got = 0
    while piece := body.read(1 << 20):
        got += len(piece)
    print(f"stream {time.perf_counter() - start:.6f}", flush=True)
    if got != size:
        raise SystemExit(f"downloaded {got} bytes of {size}")
else:
    sink = Sink()
    start = time.perf_counter()
    s3.download_fileobj(bucket, key, sink, Config=transfer)
    print(f"get {time.perf_counter() - start:.6f}", flush=True)
    if sink.written != size:
        raise SystemExit(f"downloaded {sink.written} bytes of {size}")
