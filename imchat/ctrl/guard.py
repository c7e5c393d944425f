"""Request-wide guards: a small body limit everywhere but uploads, and `nosniff` on
every reply (JSON, pages, static files and errors alike)."""
from flask import abort, request

# The one call whose body may be large (up to MAX_CONTENT_LENGTH, the upload limit).
UPLOAD_ENDPOINT = 'attach.upload'


def install(app):
    body_max = app.config['BODY_MAX_BYTES']

    @app.before_request
    def refuse_large_bodies():
        # Parsing a large form is slow (a 10 MB urlencoded body takes seconds): refuse it
        # before anything reads it. A chunked body, of unknown length, is cut at the limit.
        if not body_max or request.endpoint == UPLOAD_ENDPOINT:
            return
        if request.content_length is not None and request.content_length > body_max:
            abort(413)
        request.max_content_length = body_max

    @app.after_request
    def no_sniffing(response):
        response.headers['X-Content-Type-Options'] = 'nosniff'
        return response
