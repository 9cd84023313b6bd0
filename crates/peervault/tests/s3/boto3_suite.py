"""What an AWS SDK does against PeerVault's S3 gateway, checked call by call.

Run by the black-box test `s3::boto3_against_one_node` with S3_ENDPOINT,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and WORK (a temp dir of the test's own)
set; exits non-zero on the first difference from what S3 does.
"""

import datetime
import hashlib
import os
import sys
import urllib.error
import urllib.request

import boto3
import botocore
from botocore.config import Config
from boto3.s3.transfer import TransferConfig

ENDPOINT = os.environ["S3_ENDPOINT"]
WORK = os.environ["WORK"]
KEY_ID = os.environ["AWS_ACCESS_KEY_ID"]
SECRET = os.environ["AWS_SECRET_ACCESS_KEY"]


def client(secret=SECRET, **config):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=secret,
        region_name="eu-west-7",  # any region name is accepted
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )


s3 = client()


def error_of(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{call.__name__} succeeded; an error was expected")


def step(text):
    print(f"-- {text}", flush=True)


def md5(data):
    return hashlib.md5(data).hexdigest()


step("buckets")
s3.create_bucket(Bucket="alpha")
names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
assert "alpha" in names, names
s3.head_bucket(Bucket="alpha")
assert error_of(s3.create_bucket, Bucket="alpha")[0] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
assert error_of(s3.head_bucket, Bucket="nobucket")[1] == 404
assert error_of(s3.get_object, Bucket="nobucket", Key="x")[0] == "NoSuchBucket"

step("put, get, head, metadata")
body = os.urandom(300_000)
put = s3.put_object(
    Bucket="alpha", Key="docs/a.bin", Body=body, ContentType="application/x-test",
    Metadata={"mtime": "1700000000", "Owner": "Tests"},
)
assert put["ETag"] == f'"{md5(body)}"', put["ETag"]
got = s3.get_object(Bucket="alpha", Key="docs/a.bin")
assert got["Body"].read() == body
assert got["ETag"] == put["ETag"]
assert got["ContentType"] == "application/x-test", got["ContentType"]
assert got["Metadata"] == {"mtime": "1700000000", "owner": "Tests"}, got["Metadata"]
head = s3.head_object(Bucket="alpha", Key="docs/a.bin")
assert head["ContentLength"] == len(body)
assert error_of(s3.get_object, Bucket="alpha", Key="docs/missing")[0] == "NoSuchKey"
assert error_of(s3.head_object, Bucket="alpha", Key="docs/missing")[1] == 404
# Content-MD5 that does not match the body: refused, the object stays.
import base64
wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
assert error_of(s3.put_object, Bucket="alpha", Key="docs/a.bin", Body=b"x" * 10, ContentMD5=wrong)[0] == "BadDigest"
assert s3.get_object(Bucket="alpha", Key="docs/a.bin")["Body"].read() == body
# Flexible checksums (CRC32 in an aws-chunked trailer, SHA256 in a header).
s3.put_object(Bucket="alpha", Key="docs/crc.bin", Body=body, ChecksumAlgorithm="CRC32")
s3.put_object(Bucket="alpha", Key="docs/sha.bin", Body=body, ChecksumAlgorithm="SHA256")
assert s3.get_object(Bucket="alpha", Key="docs/crc.bin")["Body"].read() == body
assert s3.get_object(Bucket="alpha", Key="docs/sha.bin")["Body"].read() == body

step("ranges")
r = s3.get_object(Bucket="alpha", Key="docs/a.bin", Range="bytes=1000-1999")
assert r["Body"].read() == body[1000:2000]
assert r["ContentRange"] == f"bytes 1000-1999/{len(body)}", r["ContentRange"]
assert s3.get_object(Bucket="alpha", Key="docs/a.bin", Range="bytes=-10")["Body"].read() == body[-10:]
assert s3.get_object(Bucket="alpha", Key="docs/a.bin", Range="bytes=299990-")["Body"].read() == body[299990:]
assert error_of(s3.get_object, Bucket="alpha", Key="docs/a.bin", Range="bytes=400000-400001") == ("InvalidRange", 416)

step("conditional requests")
etag = put["ETag"]
assert error_of(s3.get_object, Bucket="alpha", Key="docs/a.bin", IfNoneMatch=etag)[1] == 304
assert error_of(s3.get_object, Bucket="alpha", Key="docs/a.bin", IfMatch='"0000"')[1] == 412
assert s3.get_object(Bucket="alpha", Key="docs/a.bin", IfMatch=etag)["Body"].read() == body
future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
past = datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)
assert error_of(s3.get_object, Bucket="alpha", Key="docs/a.bin", IfModifiedSince=future)[1] == 304
assert s3.get_object(Bucket="alpha", Key="docs/a.bin", IfModifiedSince=past)["ContentLength"] == len(body)
assert error_of(s3.get_object, Bucket="alpha", Key="docs/a.bin", IfUnmodifiedSince=past)[1] == 412
assert error_of(s3.put_object, Bucket="alpha", Key="docs/a.bin", Body=b"new", IfNoneMatch="*")[1] == 412

step("listing: delimiter, prefix, pages, url encoding")
keys = [f"list/{d}/{i:03}" for d in ("x", "y") for i in range(7)] + ["list/top", "list/sp ace+plus%.txt"]
for k in keys:
    s3.put_object(Bucket="alpha", Key=k, Body=k.encode())
top = s3.list_objects_v2(Bucket="alpha", Prefix="list/", Delimiter="/")
assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["list/x/", "list/y/"], top
assert [o["Key"] for o in top["Contents"]] == ["list/sp ace+plus%.txt", "list/top"], top["Contents"]
seen, token, pages = [], None, 0
while True:
    kwargs = {"Bucket": "alpha", "Prefix": "list/", "MaxKeys": 4}
    if token:
        kwargs["ContinuationToken"] = token
    page = s3.list_objects_v2(**kwargs)
    pages += 1
    seen += [o["Key"] for o in page.get("Contents", [])]
    if not page["IsTruncated"]:
        break
    token = page["NextContinuationToken"]
assert seen == sorted(keys), seen
assert pages == 4, pages
after = s3.list_objects_v2(Bucket="alpha", Prefix="list/", StartAfter="list/x/005")
assert [o["Key"] for o in after["Contents"]][0] == "list/x/006"
v1 = s3.list_objects(Bucket="alpha", Prefix="list/y/", MaxKeys=5)
assert v1["IsTruncated"] and len(v1["Contents"]) == 5
v1 = s3.list_objects(Bucket="alpha", Prefix="list/y/", Marker=v1["Contents"][-1]["Key"])
assert [o["Key"] for o in v1["Contents"]] == ["list/y/005", "list/y/006"]
paginator = s3.get_paginator("list_objects_v2")
all_keys = [o["Key"] for p in paginator.paginate(Bucket="alpha", PaginationConfig={"PageSize": 3}) for o in p.get("Contents", [])]
assert all_keys == sorted(all_keys) and len(all_keys) == len(set(all_keys))

step("multipart upload of 100 MiB")
big = os.path.join(WORK, "big.bin")
with open(big, "wb") as f:
    for i in range(100):
        f.write(hashlib.sha256(i.to_bytes(4, "big")).digest() * (1 << 15))
config = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=10)
s3.upload_file(big, "alpha", "big/100MiB.bin", Config=config)
head = s3.head_object(Bucket="alpha", Key="big/100MiB.bin")
assert head["ContentLength"] == 100 << 20
assert head["ETag"].endswith('-13"'), head["ETag"]  # 12 parts of 8 MiB and one of 4
back = os.path.join(WORK, "big.back")
s3.download_file("alpha", "big/100MiB.bin", back, Config=config)
with open(big, "rb") as a, open(back, "rb") as b:
    assert hashlib.sha256(a.read()).digest() == hashlib.sha256(b.read()).digest()
mid = s3.get_object(Bucket="alpha", Key="big/100MiB.bin", Range=f"bytes={(8 << 20) - 5}-{(8 << 20) + 4}")["Body"].read()
with open(big, "rb") as f:
    f.seek((8 << 20) - 5)
    assert mid == f.read(10)

step("multipart by hand: parts out of order, list, copy a part, abort")
up = s3.create_multipart_upload(Bucket="alpha", Key="hand/made", ContentType="text/x-made")
uid = up["UploadId"]
p1, p2 = os.urandom(5 << 20), os.urandom(1000)
e2 = s3.upload_part(Bucket="alpha", Key="hand/made", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
e1 = s3.upload_part(Bucket="alpha", Key="hand/made", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
parts = s3.list_parts(Bucket="alpha", Key="hand/made", UploadId=uid)["Parts"]
assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 << 20), (2, 1000)], parts
uploads = s3.list_multipart_uploads(Bucket="alpha")["Uploads"]
assert [u["UploadId"] for u in uploads] == [uid], uploads
assert error_of(s3.complete_multipart_upload, Bucket="alpha", Key="hand/made", UploadId=uid,
                MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})[0] == "InvalidPartOrder"
assert error_of(s3.complete_multipart_upload, Bucket="alpha", Key="hand/made", UploadId=uid,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e2}, {"PartNumber": 2, "ETag": e2}]})[0] == "InvalidPart"
done = s3.complete_multipart_upload(Bucket="alpha", Key="hand/made", UploadId=uid,
                                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
digests = bytes.fromhex(e1.strip('"')) + bytes.fromhex(e2.strip('"'))
assert done["ETag"] == f'"{hashlib.md5(digests).hexdigest()}-2"', done["ETag"]
made = s3.get_object(Bucket="alpha", Key="hand/made")
assert made["Body"].read() == p1 + p2 and made["ContentType"] == "text/x-made"
assert s3.list_multipart_uploads(Bucket="alpha").get("Uploads", []) == []
assert error_of(s3.list_parts, Bucket="alpha", Key="hand/made", UploadId=uid)[0] == "NoSuchUpload"
up = s3.create_multipart_upload(Bucket="alpha", Key="hand/copied")
uid = up["UploadId"]
c1 = s3.upload_part_copy(Bucket="alpha", Key="hand/copied", UploadId=uid, PartNumber=1,
                         CopySource={"Bucket": "alpha", "Key": "hand/made"}, CopySourceRange=f"bytes=0-{(5 << 20) - 1}")
c2 = s3.upload_part_copy(Bucket="alpha", Key="hand/copied", UploadId=uid, PartNumber=2,
                         CopySource={"Bucket": "alpha", "Key": "docs/a.bin"})
s3.complete_multipart_upload(Bucket="alpha", Key="hand/copied", UploadId=uid, MultipartUpload={"Parts": [
    {"PartNumber": 1, "ETag": c1["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": c2["CopyPartResult"]["ETag"]}]})
assert s3.get_object(Bucket="alpha", Key="hand/copied")["Body"].read() == p1 + body
# Parts of odd sizes (the second does not start on a whole MiB), and parts
# of 5 MiB as rclone cuts them, sent last first: the vault's hash of each whole
# is checked against its bytes by the test that runs this suite.
for key, sizes in [("hand/odd", [(5 << 20) + 1, 5 << 20, 3]), ("hand/fives", [5 << 20, 5 << 20, 5 << 20, 12345])]:
    up = s3.create_multipart_upload(Bucket="alpha", Key=key)
    datas = [os.urandom(n) for n in sizes]
    tags = {}
    for number in reversed(range(1, len(sizes) + 1)):
        tags[number] = s3.upload_part(Bucket="alpha", Key=key, UploadId=up["UploadId"], PartNumber=number,
                                      Body=datas[number - 1])["ETag"]
    s3.complete_multipart_upload(Bucket="alpha", Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": [
        {"PartNumber": n, "ETag": tags[n]} for n in sorted(tags)]})
    whole = b"".join(datas)
    assert s3.get_object(Bucket="alpha", Key=key)["Body"].read() == whole
    with open(os.path.join(WORK, key.replace("/", "-")), "wb") as f:
        f.write(whole)
up = s3.create_multipart_upload(Bucket="alpha", Key="hand/aborted")
s3.upload_part(Bucket="alpha", Key="hand/aborted", UploadId=up["UploadId"], PartNumber=1, Body=b"x" * 100)
s3.abort_multipart_upload(Bucket="alpha", Key="hand/aborted", UploadId=up["UploadId"])
assert error_of(s3.head_object, Bucket="alpha", Key="hand/aborted")[1] == 404
assert error_of(s3.upload_part, Bucket="alpha", Key="hand/aborted", UploadId=up["UploadId"], PartNumber=2, Body=b"y")[0] == "NoSuchUpload"

step("copy")
copied = s3.copy_object(Bucket="alpha", Key="copies/a.bin", CopySource={"Bucket": "alpha", "Key": "docs/a.bin"})
assert copied["CopyObjectResult"]["ETag"] == etag
c = s3.get_object(Bucket="alpha", Key="copies/a.bin")
assert c["Body"].read() == body and c["Metadata"]["mtime"] == "1700000000"
s3.copy_object(Bucket="alpha", Key="docs/a.bin", CopySource={"Bucket": "alpha", "Key": "docs/a.bin"},
               MetadataDirective="REPLACE", Metadata={"mtime": "1800000000"}, ContentType="text/plain")
c = s3.head_object(Bucket="alpha", Key="docs/a.bin")
assert c["Metadata"] == {"mtime": "1800000000"} and c["ContentType"] == "text/plain", c
assert error_of(s3.copy_object, Bucket="alpha", Key="x", CopySource={"Bucket": "alpha", "Key": "nothing"})[0] == "NoSuchKey"

step("presigned get")
url = s3.generate_presigned_url("get_object", Params={"Bucket": "alpha", "Key": "docs/a.bin"}, ExpiresIn=300)
with urllib.request.urlopen(url) as response:
    assert response.read() == body
signature = url.split("X-Amz-Signature=")[1][:64]
flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
bad = url.replace(signature, flipped)
try:
    urllib.request.urlopen(bad)
    raise AssertionError("a tampered presigned URL was accepted")
except urllib.error.HTTPError as e:
    assert e.code == 403, e.code
put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "alpha", "Key": "presigned/up"}, ExpiresIn=300)
urllib.request.urlopen(urllib.request.Request(put_url, data=b"via presigned put", method="PUT"))
assert s3.get_object(Bucket="alpha", Key="presigned/up")["Body"].read() == b"via presigned put"

step("refusals: wrong secret, unknown key, unsigned, clock skew, hostile keys")
assert error_of(client(secret="wrong" + SECRET[5:]).list_buckets) == ("SignatureDoesNotMatch", 403)
stranger = boto3.client("s3", endpoint_url=ENDPOINT, aws_access_key_id="PVAAAAAAAAAAAAAAAAAA",
                        aws_secret_access_key=SECRET, region_name="us-east-1")
assert error_of(stranger.list_buckets)[0] == "InvalidAccessKeyId"
try:
    urllib.request.urlopen(f"{ENDPOINT}/alpha/docs/a.bin")
    raise AssertionError("an anonymous read was accepted")
except urllib.error.HTTPError as e:
    assert e.code == 403, e.code
real_now = botocore.auth.get_current_datetime


def two_hours_slow(remove_tzinfo=True):
    return real_now(remove_tzinfo) - datetime.timedelta(hours=2)


botocore.auth.get_current_datetime = two_hours_slow
try:
    assert error_of(client().list_buckets)[0] == "RequestTimeTooSkewed"
finally:
    botocore.auth.get_current_datetime = real_now
assert error_of(s3.put_object, Bucket="alpha", Key="k" * 1025, Body=b"x")[0] == "KeyTooLongError"
assert error_of(s3.put_object, Bucket="alpha", Key="nul\x01here", Body=b"x")[1] == 400
assert error_of(s3.put_object, Bucket="alpha", Key="k" * 2000, Body=b"x")[0] == "KeyTooLongError"
assert error_of(s3.put_object, Bucket="alpha", Key="nul\x00here", Body=b"x")[1] == 400


def signed(method, path, body=b"", headers=None):
    """A request signed by botocore, as raw as it goes on the wire."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    request = AWSRequest(method=method, url=f"{ENDPOINT}{path}", data=body, headers=headers or {})
    request.headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    S3SigV4Auth(Credentials(KEY_ID, SECRET), "s3", "us-east-1").add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, data=body or None, method=method, headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(raw) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


status, text = signed("POST", "/alpha?delete", b"<Delete><Object><Key>unclosed")
assert status == 400 and b"MalformedXML" in text, (status, text)
status, text = signed("POST", "/alpha/k?uploads=", b"")
upload_id = text.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode()
status, text = signed("POST", f"/alpha/k?uploadId={upload_id}", b"<CompleteMultipartUpload><Part>")
assert status == 400 and b"MalformedXML" in text, (status, text)
try:
    status, _ = signed("GET", "/alpha/docs/a.bin", headers={"x-amz-meta-huge": "h" * 1_000_000})
    assert status in (400, 431), status
except (urllib.error.URLError, ConnectionError):
    pass  # the connection was closed on it: also a refusal
assert error_of(s3.put_object, Bucket="alpha", Key="meta", Body=b"x", Metadata={"big": "m" * 3000})[0] == "MetadataTooLarge"
assert s3.head_bucket(Bucket="alpha")["ResponseMetadata"]["HTTPStatusCode"] == 200  # still serving
s3.put_object(Bucket="alpha", Key="../../escape", Body=b"plain key")
assert s3.get_object(Bucket="alpha", Key="../../escape")["Body"].read() == b"plain key"

step("delete")
s3.delete_object(Bucket="alpha", Key="copies/a.bin")
assert error_of(s3.head_object, Bucket="alpha", Key="copies/a.bin")[1] == 404
s3.delete_object(Bucket="alpha", Key="copies/never-was")
gone = s3.delete_objects(Bucket="alpha", Delete={"Objects": [{"Key": k} for k in keys[:5]] + [{"Key": "not/there"}]})
assert len(gone["Deleted"]) == 6, gone
assert error_of(s3.delete_bucket, Bucket="alpha")[0] == "BucketNotEmpty"
s3.create_bucket(Bucket="empty")
s3.delete_bucket(Bucket="empty")
assert error_of(s3.head_bucket, Bucket="empty")[1] == 404

step("what the CLI stored is an object too")
cli = s3.get_object(Bucket="fromcli", Key="hello.txt")
assert cli["Body"].read() == b"stored with peervault put\n"
assert "fromcli" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
print("boto3 suite: all passed", flush=True)
sys.exit(0)
