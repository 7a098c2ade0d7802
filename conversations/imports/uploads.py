"""An uploaded file on its way to an import: written to disk as the request is parsed, refused past the size cap,
then moved to a private temporary file that outlives the request (the background job reads it, then deletes it)."""

import os
import tempfile

from django.conf import settings
from django.core.files.move import file_move_safe
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler

# Room for the multipart envelope and the CSRF field around the file itself.
_ENVELOPE_BYTES = 64 * 1024


class CappedUploadHandler(TemporaryFileUploadHandler):
    """Streams the upload to a temporary file on disk whatever its size, and stops at `max_bytes`: the rest of
    the request is read and thrown away, nothing more is written, and `too_large` says why no file came."""

    def __init__(self, request=None, *, max_bytes: int):
        super().__init__(request)
        self.max_bytes = max_bytes
        self.too_large = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        # The request says its length up front: a file that cannot fit is refused before a byte is written.
        self.too_large = content_length > self.max_bytes + _ENVELOPE_BYTES

    def new_file(self, *args, **kwargs):
        if self.too_large:
            raise StopUpload(connection_reset=False)
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > self.max_bytes:
            self.too_large = True
            raise StopUpload(connection_reset=False)
        return super().receive_data_chunk(raw_data, start)


def keep_upload(upload) -> str:
    """Move (or copy) the uploaded file to a new private temporary file (mode 0600) and return its path."""
    handle, path = tempfile.mkstemp(prefix="chat-import-", suffix=".upload", dir=settings.FILE_UPLOAD_TEMP_DIR)
    os.close(handle)
    try:
        if hasattr(upload, "temporary_file_path"):
            file_move_safe(upload.temporary_file_path(), path, allow_overwrite=True)
            os.chmod(path, 0o600)
        else:
            with open(path, "wb") as target:
                for chunk in upload.chunks():
                    target.write(chunk)
    except BaseException:
        discard(path)
        raise
    return path


def discard(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
