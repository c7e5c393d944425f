"""A small OSS-compatible object store for the tests, served on 127.0.0.1.

It speaks the part of the Aliyun OSS REST API that imchat uses, path-style (the form
oss2 takes for an IP endpoint): PUT, GET and DELETE of `/<bucket>/<key>`, and listing a
bucket (`GET /<bucket>/?prefix=...`, ListObjects v1, for remove-orphans). Every write must be
signed, and the signature is checked the way OSS checks it, for both signature version
1 (`Authorization: OSS <id>:<sig>`, HMAC-SHA1) and version 4 (`OSS4-HMAC-SHA256`, with
a region in its scope), so a wrong secret, key id or region fails as it would on OSS:
403 with an XML error body naming the code. Reads are anonymous, as from a public-read
bucket. Replies carry the headers oss2 checks: x-oss-request-id, ETag and the CRC-64
of the object.

    server = FakeOss({'key-id': 'secret'}, buckets={'chat'}, region='cn-hangzhou')
    server.start()      # server.endpoint is http://127.0.0.1:<port>
    ...
    server.stop()
"""
import base64
import calendar
import email.utils
import hashlib
import hmac
import time
import uuid
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape

import crcmod
from gevent.pywsgi import WSGIServer

# OSS refuses a request whose date is further than this from its own clock.
MAX_CLOCK_SKEW_SECONDS = 15 * 60
# Query parameters that are part of a v1 signature's resource (the ones imchat could send).
V1_SUBRESOURCES = frozenset({'acl', 'uploads', 'uploadId', 'partNumber', 'append', 'position',
                             'response-content-type', 'response-content-disposition'})
# CRC-64/ECMA-182 as OSS computes it for x-oss-hash-crc64ecma.
crc64 = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xffffffffffffffff, rev=True)


class OssFault(Exception):
    def __init__(self, status, code, message, **details):
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class FakeOss:
    def __init__(self, access_keys, buckets, region=None):
        self.access_keys = dict(access_keys)
        self.buckets = set(buckets)
        self.region = region
        self.objects = {}  # (bucket, key) -> (bytes, content type)
        self.modified = {}  # (bucket, key) -> seconds since the epoch (tests may age it)
        self.requests = []  # (method, path, signature version or None, status)
        self.server = None

    @property
    def endpoint(self):
        return 'http://127.0.0.1:{}'.format(self.server.server_port)

    def start(self):
        self.server = WSGIServer(('127.0.0.1', 0), self, log=None, error_log=None)
        self.server.start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.stop(timeout=1)

    # --- WSGI -------------------------------------------------------------------

    def __call__(self, environ, start_response):
        request_id = uuid.uuid4().hex[:24].upper()
        method = environ['REQUEST_METHOD']
        path = environ.get('PATH_INFO', '').encode('latin-1').decode('utf-8')
        headers = _request_headers(environ)
        version = None
        try:
            bucket, key = _split_path(path)
            if bucket not in self.buckets:
                raise OssFault(404, 'NoSuchBucket', 'The specified bucket does not exist.',
                               BucketName=bucket)
            if 'authorization' in headers:
                version = _signature_version(headers['authorization'])
                self._check_signature(version, method, bucket, key, headers, environ)
            if method == 'PUT':
                status, reply_headers, body = self._put(bucket, key, headers, environ,
                                                        signed=version is not None)
            elif method == 'GET' and not key:
                status, reply_headers, body = self._list(bucket, environ)
            elif method == 'DELETE':
                if version is None:
                    raise OssFault(403, 'AccessDenied',
                                   'You have no right to access this object.')
                self.objects.pop((bucket, key), None)
                self.modified.pop((bucket, key), None)
                status, reply_headers, body = 204, [], b''
            elif method in ('GET', 'HEAD'):
                status, reply_headers, body = self._get(bucket, key)
                if method == 'HEAD':
                    body = b''
            else:
                raise OssFault(405, 'MethodNotAllowed',
                               'The specified method is not allowed against this resource.')
        except OssFault as fault:
            status, reply_headers, body = _error_reply(fault, request_id)
        self.requests.append((method, path, version, status))
        reply_headers.append(('x-oss-request-id', request_id))
        start_response('{} {}'.format(status, _REASONS.get(status, 'Error')), reply_headers)
        return [body]

    def _put(self, bucket, key, headers, environ, signed):
        if not signed:
            raise OssFault(403, 'AccessDenied', 'You have no right to access this object.')
        if not key:
            raise OssFault(400, 'InvalidObjectName', 'The specified object is not valid.')
        length = int(environ.get('CONTENT_LENGTH') or 0)
        body = environ['wsgi.input'].read(length) if length else environ['wsgi.input'].read()
        md5 = hashlib.md5(body)
        if 'content-md5' in headers and headers['content-md5'] != \
                base64.b64encode(md5.digest()).decode():
            raise OssFault(400, 'InvalidDigest', 'The Content-MD5 you specified was invalid.')
        content_type = headers.get('content-type') or 'application/octet-stream'
        self.objects[(bucket, key)] = (body, content_type)
        self.modified[(bucket, key)] = time.time()
        return 200, [('ETag', '"{}"'.format(md5.hexdigest().upper())),
                     ('x-oss-hash-crc64ecma', str(crc64(body))),
                     ('Content-Length', '0')], b''

    def _list(self, bucket, environ):
        params = dict(parse_qsl(environ.get('QUERY_STRING', ''), keep_blank_values=True))
        prefix, marker = params.get('prefix', ''), params.get('marker', '')
        max_keys = int(params.get('max-keys') or 100)
        keys = sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix)
                      and k > marker)
        page, truncated = keys[:max_keys], len(keys) > max_keys
        contents = ''.join(
            '<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>"{}"</ETag>'
            '<Type>Normal</Type><Size>{}</Size><StorageClass>Standard</StorageClass>'
            '</Contents>'.format(
                quote(key), time.strftime('%Y-%m-%dT%H:%M:%S.000Z',
                                          time.gmtime(self.modified[(bucket, key)])),
                hashlib.md5(self.objects[(bucket, key)][0]).hexdigest().upper(),
                len(self.objects[(bucket, key)][0]))
            for key in page)
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult><Name>{}</Name>'
                '<Prefix>{}</Prefix><Marker>{}</Marker><MaxKeys>{}</MaxKeys>'
                '<EncodingType>url</EncodingType><IsTruncated>{}</IsTruncated>{}{}'
                '</ListBucketResult>'.format(
                    bucket, quote(prefix), quote(marker), max_keys,
                    'true' if truncated else 'false',
                    '<NextMarker>{}</NextMarker>'.format(quote(page[-1])) if truncated else '',
                    contents)).encode()
        return 200, [('Content-Type', 'application/xml'), ('Content-Length', str(len(body)))], body

    def _get(self, bucket, key):
        if (bucket, key) not in self.objects:
            raise OssFault(404, 'NoSuchKey', 'The specified key does not exist.', Key=key)
        body, content_type = self.objects[(bucket, key)]
        return 200, [('Content-Type', content_type), ('Content-Length', str(len(body))),
                     ('x-oss-hash-crc64ecma', str(crc64(body)))], body

    # --- signatures -------------------------------------------------------------

    def _check_signature(self, version, method, bucket, key, headers, environ):
        authorization = headers['authorization']
        if version == 'v1':
            self._check_v1(method, bucket, key, headers, environ, authorization[4:])
        elif version == 'v4':
            self._check_v4(method, bucket, key, headers, environ,
                           authorization[len('OSS4-HMAC-SHA256 '):])
        else:
            raise OssFault(400, 'InvalidArgument', 'Authorization header is invalid.')

    def _secret_of(self, access_key_id):
        if access_key_id not in self.access_keys:
            raise OssFault(403, 'InvalidAccessKeyId',
                           'The OSS Access Key Id you provided does not exist in our records.',
                           OSSAccessKeyId=access_key_id)
        return self.access_keys[access_key_id]

    def _check_v1(self, method, bucket, key, headers, environ, credential):
        access_key_id, _, signature = credential.rpartition(':')
        secret = self._secret_of(access_key_id)
        date = headers.get('x-oss-date') or headers.get('date', '')
        _check_clock(_parse_time(lambda: email.utils.parsedate_to_datetime(date).timestamp()))
        oss_headers = ''.join('{}:{}\n'.format(name, headers[name])
                              for name in sorted(headers) if name.startswith('x-oss-'))
        params = parse_qsl(environ.get('QUERY_STRING', ''), keep_blank_values=True)
        subresources = sorted((k, v) for k, v in params if k in V1_SUBRESOURCES)
        resource = '/{}/{}'.format(bucket, key)
        if subresources:
            resource += '?' + '&'.join(k + '=' + v if v else k for k, v in subresources)
        string_to_sign = '\n'.join([method, headers.get('content-md5', ''),
                                    headers.get('content-type', ''), date,
                                    oss_headers + resource])
        expected = base64.b64encode(hmac.new(secret.encode(), string_to_sign.encode(),
                                             hashlib.sha1).digest()).decode()
        if not hmac.compare_digest(expected, signature):
            raise OssFault(403, 'SignatureDoesNotMatch',
                           'The request signature we calculated does not match the '
                           'signature you provided. Check your key and signing method.',
                           StringToSign=string_to_sign, SignatureProvided=signature,
                           OSSAccessKeyId=access_key_id)

    def _check_v4(self, method, bucket, key, headers, environ, fields_text):
        fields = dict(part.strip().split('=', 1) for part in fields_text.split(',')
                      if '=' in part)
        try:
            access_key_id, date, region, product, terminator = fields['Credential'].split('/')
            signature = fields['Signature']
        except (KeyError, ValueError):
            raise OssFault(400, 'InvalidArgument', 'Authorization header is invalid.')
        secret = self._secret_of(access_key_id)
        stamp = headers.get('x-oss-date', '')
        if not stamp or stamp[:8] != date or product != 'oss' \
                or terminator != 'aliyun_v4_request':
            raise OssFault(400, 'InvalidArgument', 'The credential scope is invalid.')
        _check_clock(_parse_time(lambda: calendar.timegm(time.strptime(stamp, '%Y%m%dT%H%M%SZ'))))
        if self.region is not None and region != self.region:
            raise OssFault(400, 'InvalidArgument', 'Invalid signing region in Authorization '
                           'header, expected {}.'.format(self.region))
        additional = [name for name in fields.get('AdditionalHeaders', '').split(';') if name]
        signed = sorted(name for name in headers
                        if name.startswith('x-oss-') or name in ('content-type', 'content-md5')
                        or name in additional)
        params = parse_qsl(environ.get('QUERY_STRING', ''), keep_blank_values=True)
        query = '&'.join(k + '=' + v if v else k for k, v in sorted(
            (_v4_quote(k), _v4_quote(v)) for k, v in params))
        canonical_request = '\n'.join([
            method,
            _v4_quote('/{}/{}'.format(bucket, key), safe='/'),
            query,
            ''.join('{}:{}\n'.format(name, headers[name].strip()) for name in signed),
            ';'.join(sorted(additional)),
            headers.get('x-oss-content-sha256', 'UNSIGNED-PAYLOAD')])
        scope = '/'.join([date, region, product, terminator])
        string_to_sign = '\n'.join(['OSS4-HMAC-SHA256', stamp, scope,
                                    hashlib.sha256(canonical_request.encode()).hexdigest()])
        signing_key = ('aliyun_v4' + secret).encode()
        for part in (date, region, product, terminator):
            signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise OssFault(403, 'SignatureDoesNotMatch',
                           'The request signature we calculated does not match the '
                           'signature you provided. Check your key and signing method.',
                           CanonicalRequest=canonical_request, StringToSign=string_to_sign,
                           OSSAccessKeyId=access_key_id)


_REASONS = {200: 'OK', 204: 'No Content', 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found',
            405: 'Method Not Allowed'}


def _signature_version(authorization):
    if authorization.startswith('OSS '):
        return 'v1'
    if authorization.startswith('OSS4-HMAC-SHA256 '):
        return 'v4'
    return 'unknown'


def _request_headers(environ):
    headers = {name[5:].replace('_', '-').lower(): value
               for name, value in environ.items() if name.startswith('HTTP_')}
    for name in ('CONTENT_TYPE', 'CONTENT_LENGTH'):
        if environ.get(name):
            headers[name.replace('_', '-').lower()] = environ[name]
    return headers


def _split_path(path):
    bucket, _, key = path.lstrip('/').partition('/')
    if not bucket:
        raise OssFault(400, 'InvalidBucketName', 'The specified bucket is not valid.')
    return bucket, key


def _parse_time(parse):
    try:
        return parse()
    except (TypeError, ValueError):
        return None


def _check_clock(timestamp):
    if timestamp is None:
        raise OssFault(403, 'AccessDenied', 'Date header not found.')
    if abs(time.time() - timestamp) > MAX_CLOCK_SKEW_SECONDS:
        raise OssFault(403, 'RequestTimeTooSkewed',
                       'The difference between the request time and the current time is '
                       'too large.')


def _v4_quote(text, safe=''):
    return quote(text, safe='-_.~' + safe)


def _error_reply(fault, request_id):
    details = ''.join('<{0}>{1}</{0}>'.format(name, escape(str(value)))
                      for name, value in fault.details.items())
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{}</Code><Message>{}'
            '</Message><RequestId>{}</RequestId><HostId>127.0.0.1</HostId>{}</Error>'.format(
                fault.code, escape(fault.message), request_id, details)).encode()
    return fault.status, [('Content-Type', 'application/xml'),
                          ('Content-Length', str(len(body)))], body


def main(argv):
    """Serve a FakeOss in its own process (for the browser tests, whose Playwright loop
    would starve a gevent server in the same process):
    python tests/oss_server.py PORT KEY_ID SECRET BUCKET"""
    port, key_id, secret, bucket = argv
    server = FakeOss({key_id: secret}, buckets={bucket})
    server.server = WSGIServer(('127.0.0.1', int(port)), server, log=None, error_log=None)
    server.server.serve_forever()


if __name__ == '__main__':
    import sys

    main(sys.argv[1:])
