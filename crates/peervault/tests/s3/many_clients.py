"""Many S3 clients at once against one gateway: COUNT GETs and COUNT PUTs of
SIZE bytes each, all in flight together, every byte checked.

Run by `s3::many_clients_at_once_within_the_memory_budget`, which measures the
node's peak RSS around it. Environment: S3_ENDPOINT, COUNT, SIZE, and the key in
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.

Each object's content is one random buffer with its bytes mapped through a
table of its own (XOR with the object's number), so that no two objects share
a chunk (the vault would store a shared chunk once and this test would then
measure less than it claims), while making them costs no more than a copy.
"""

import hashlib
import io
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

ENDPOINT = os.environ["S3_ENDPOINT"]
COUNT = int(os.environ.get("COUNT", "64"))
SIZE = int(os.environ.get("SIZE", str(64 << 20)))
BUCKET = "many"
STEP = 1 << 20

BASE = os.urandom(SIZE)
TABLES = [bytes(b ^ k for b in range(256)) for k in range(256)]


def content(k, start, end):
    """Bytes start..end of object number k."""
    return BASE[start:end].translate(TABLES[k])


class Generated(io.RawIOBase):
    """A seekable, readable file whose bytes are object k's (botocore reads a
    body more than once: for its checksum, its signature, and to send it)."""

    def __init__(self, k):
        self.k = k
        self.pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: SIZE}[whence]
        self.pos = max(0, min(SIZE, base + offset))
        return self.pos

    def read(self, n=-1):
        end = SIZE if n is None or n < 0 else min(SIZE, self.pos + n)
        out = content(self.k, self.pos, end)
        self.pos = end
        return out

    def readinto(self, buf):
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)


def md5_of(k):
    h = hashlib.md5()
    for start in range(0, SIZE, STEP):
        h.update(content(k, start, min(SIZE, start + STEP)))
    return h.hexdigest()


s3 = boto3.client(
    "s3",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    config=Config(
        max_pool_connections=2 * COUNT + 8,
        # A request that fails must fail the test, not be tried again.
        retries={"max_attempts": 1, "mode": "standard"},
        # Requests beyond the budget wait for buffers: waiting is allowed,
        # failing is not.
        read_timeout=600,
        connect_timeout=60,
    ),
)


def put(name, k):
    s3.put_object(Bucket=BUCKET, Key=name, Body=Generated(k), ContentLength=SIZE)


def get_and_check(name, k):
    body = s3.get_object(Bucket=BUCKET, Key=name)["Body"]
    at = 0
    for piece in body.iter_chunks(STEP):
        if piece != content(k, at, at + len(piece)):
            raise AssertionError(f"{name}: bytes differ near offset {at}")
        at += len(piece)
    if at != SIZE:
        raise AssertionError(f"{name}: {at} bytes read back, {SIZE} written")


def run_all(jobs, workers):
    errors = []
    lock = threading.Lock()

    def guarded(job):
        try:
            job()
        except Exception as e:  # noqa: BLE001 - every failure is reported
            with lock:
                errors.append(repr(e))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(guarded, jobs))
    if errors:
        sys.exit(f"{len(errors)} of {len(jobs)} requests failed, first: {errors[0]}")


s3.create_bucket(Bucket=BUCKET)
# The objects to read, written a few at a time beforehand.
run_all([lambda k=k: put(f"read/{k}", k) for k in range(COUNT)], 8)
print(f"stored {COUNT} objects of {SIZE} bytes to read", flush=True)

# Then COUNT reads and COUNT writes, all at once.
jobs = []
for k in range(COUNT):
    jobs.append(lambda k=k: get_and_check(f"read/{k}", k))
    jobs.append(lambda k=k: put(f"write/{k}", COUNT + k))
run_all(jobs, 2 * COUNT)
print(f"{COUNT} GETs and {COUNT} PUTs ran at once", flush=True)

# What was written at once is what was sent: its ETag (the MD5 the gateway
# computed while storing it) and its bytes read back.
for k in range(COUNT):
    etag = s3.head_object(Bucket=BUCKET, Key=f"write/{k}")["ETag"].strip('"')
    if etag != md5_of(COUNT + k):
        sys.exit(f"write/{k}: ETag {etag} is not the MD5 of what was sent")
run_all([lambda k=k: get_and_check(f"write/{k}", COUNT + k) for k in range(COUNT)], 8)
print("many clients: all byte-identical", flush=True)
