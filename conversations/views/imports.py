"""The Import page: upload a ChatGPT data export or JSON exports of this site, and follow this person's imports
(the page polls each unfinished job's status URL: static/conversations/js/imports.js)."""

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from .. import selectors, services
from ..exceptions import ChatError
from ..forms import ImportForm
from ..imports import runner
from ..imports.uploads import CappedUploadHandler
from ._common import sidebar_context


@login_required
@require_http_methods(["GET", "POST"])
@csrf_exempt  # only until the upload handler is in place: _import_page checks the token (Django's documented way)
def import_page(request: HttpRequest) -> HttpResponse:
    """GET: the form and this person's recent imports. POST (multipart, `file`): start an import in the background."""
    handler = None
    if request.method == "POST":
        # Before anything reads the body: the upload goes to disk, and stops at the cap.
        handler = CappedUploadHandler(request, max_bytes=settings.CHAT_IMPORT_MAX_UPLOAD_BYTES)
        request.upload_handlers = [handler]
    return _import_page(request, handler)


@csrf_protect
def _import_page(request: HttpRequest, handler: CappedUploadHandler | None) -> HttpResponse:
    services.imports.import_jobs_expire(owner=request.user)
    form, status = ImportForm(), 200
    if handler is not None:
        form, status = ImportForm(request.POST, request.FILES), 400
        if handler.too_large:
            limit = filesizeformat(settings.CHAT_IMPORT_MAX_UPLOAD_BYTES)
            form.add_error(None, _("The file is larger than the limit of %(limit)s.") % {"limit": limit})
        elif form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                runner.import_upload(owner=request.user, upload=upload, language=get_language())
            except ChatError as exc:
                form.add_error(None, exc.message)
            else:
                flash.success(
                    request,
                    _("Importing “%(name)s”. It goes on if you leave this page.") % {"name": upload.name},
                )
                return redirect("imports")
    context = {
        **sidebar_context(request),
        "form": form,
        "jobs": selectors.imports.recent_import_jobs(request.user),
        "max_upload": settings.CHAT_IMPORT_MAX_UPLOAD_BYTES,
    }
    return render(request, "conversations/imports.html", context, status=status)


@login_required
@require_GET
def import_status(request: HttpRequest, job_id) -> HttpResponse:
    """One of this person's import jobs as JSON (what the page polls); 404 for anyone else's."""
    services.imports.import_jobs_expire(owner=request.user)
    job = selectors.imports.import_job_for(request.user, job_id)
    if job is None:
        raise Http404("No such import.")
    response = JsonResponse(selectors.imports.import_job_status(job))
    response["Cache-Control"] = "private, no-store"
    return response
