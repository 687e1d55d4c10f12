"""The answers of the facades: VDXP's ``{status, ErrorCode, ErrorDesc, ...}`` envelope and
LGSP's ``{status, errorCode, errorDesc, data}``, always HTTP 200 (those clients read only the
body), and the one table from the hub's error codes to a stable numeric ``ErrorCode`` with a
Vietnamese description (README "Connecting an existing DMS" lists it).

Answers are JSON with non-ASCII escaped (``\\uXXXX``): SDKVXP 2.0.1 reads sendEdoc's answer
as US-ASCII and 2.0.0 in the JVM's default charset, and gson decodes the escapes either way.
"""

from __future__ import annotations

import json

from aiohttp import web

from exchange.errors import HubError
from schemas import FormatError

__all__ = [
    "FACADE_ERRORS",
    "OTHER_ERROR",
    "error_of",
    "facade_envelope",
    "lgsp_answer",
    "lgsp_refusal",
    "ok",
    "refusal",
]

# hub error code -> (ErrorCode, ErrorDesc). Numbers never change once published.
FACADE_ERRORS: dict[str, tuple[str, str]] = {
    "auth.missing": ("101", "Thiếu thông tin xác thực"),
    "auth.invalid_token": ("102", "Mã truy cập không hợp lệ hoặc đã bị thu hồi"),
    "auth.token_expired": ("103", "Mã truy cập đã hết hạn"),
    "auth.invalid_client": ("104", "Sai mã hoặc mật khẩu ứng dụng"),
    "auth.unsupported_grant_type": ("105", "Kiểu cấp quyền không được hỗ trợ"),
    "auth.throttled": ("106", "Đăng nhập sai quá nhiều lần, vui lòng chờ"),
    "auth.certificate_required": ("107", "Đơn vị yêu cầu chứng thư số máy khách"),
    "auth.certificate_mismatch": ("108", "Mã truy cập không khớp chứng thư số máy khách"),
    "vdxp.unsigned": ("110", "Thiếu hoặc sai định dạng tiêu đề ký XroadVnpt"),
    "vdxp.bad_signature": ("111", "Chữ ký HMAC không hợp lệ hoặc systemid không tồn tại"),
    "vdxp.organ_not_served": ("112", "Hệ thống không được phép gửi, nhận cho đơn vị này"),
    "request.malformed": ("201", "Yêu cầu HTTP sai định dạng"),
    "request.aborted": ("202", "Yêu cầu bị ngắt giữa chừng"),
    "request.expectation_failed": ("203", "Tiêu đề Expect không được hỗ trợ"),
    "request.timeout": ("204", "Yêu cầu đến quá chậm"),
    "request.uri_too_long": ("205", "Đường dẫn quá dài"),
    "request.header_too_large": ("206", "Tiêu đề yêu cầu quá lớn"),
    "request.unsupported_encoding": ("207", "Kiểu nén nội dung không được hỗ trợ"),
    "request.rate_limited": ("208", "Gửi yêu cầu quá nhiều, vui lòng chờ"),
    "request.unsupported_media_type": ("209", "Kiểu nội dung không được hỗ trợ"),
    "request.invalid_parameter": ("210", "Tham số không hợp lệ"),
    "request.invalid_json": ("211", "Nội dung JSON không hợp lệ"),
    "vdxp.missing_parameter": ("212", "Thiếu tham số bắt buộc"),
    "http.not_found": ("213", "Không có chức năng này"),
    "http.method_not_allowed": ("214", "Phương thức HTTP không đúng"),
    "body.empty": ("220", "Nội dung gói tin rỗng"),
    "body.too_large": ("221", "Gói tin vượt quá dung lượng cho phép"),
    "body.bad_encoding": ("222", "Nội dung nén bị hỏng"),
    "body.malformed": ("223", "Khung nội dung HTTP bị hỏng"),
    "vdxp.hash_mismatch": ("224", "Mã băm gói tin (hash-file) không khớp: gói tin bị cắt"),
    "xml.malformed": ("301", "Gói tin không phải XML hợp lệ"),
    "xml.dtd_forbidden": ("302", "Gói tin chứa DOCTYPE hoặc thực thể bị cấm"),
    "xml.too_deep": ("303", "Gói tin lồng nhau quá sâu"),
    "xml.too_many_elements": ("304", "Gói tin có quá nhiều phần tử"),
    "edxml.namespace": ("310", "Gói tin không phải edXML (sai không gian tên)"),
    "edxml.schema": ("311", "Gói tin không đúng lược đồ QCVN 102:2016"),
    "edxml.base64": ("312", "Tệp đính kèm không phải base64 hợp lệ"),
    "edxml.manifest_missing_attachment": ("313", "Danh mục nêu tệp đính kèm không có"),
    "edxml.attachment_not_in_manifest": ("314", "Tệp đính kèm không có trong danh mục"),
    "edxml.duplicate_content_id": ("315", "Hai tệp đính kèm trùng ContentId"),
    "edxml.too_many_attachments": ("316", "Quá nhiều tệp đính kèm"),
    "edxml.field_too_long": ("317", "Một trường thông tin dài quá giới hạn"),
    "edxml.attachment_name": ("318", "Tên tệp đính kèm không hợp lệ"),
    "organ_id.invalid": ("320", "Mã định danh đơn vị không hợp lệ"),
    "sender.mismatch": ("401", "Đơn vị gửi (From/OrganId) không phải đơn vị đã xác thực"),
    "recipient.missing": ("402", "Gói tin không có đơn vị nhận"),
    "recipient.unknown": ("403", "Đơn vị nhận không có trong danh bạ"),
    "recipient.inactive": ("404", "Mã đơn vị nhận đã hết hiệu lực"),
    "package.duplicate_document_id": ("405", "Mã văn bản đã được dùng cho nội dung khác"),
    "status.not_party": ("406", "Đơn vị không có quyền gửi trạng thái cho văn bản này"),
    "status.unknown_document": ("407", "Không tìm thấy văn bản mà trạng thái nói đến"),
    "status.out_of_order": ("408", "Trạng thái không phù hợp với bước xử lý hiện tại của văn bản"),
    "recall.pending": ("409", "Yêu cầu thu hồi văn bản đang chờ trả lời"),
    "document.unknown": ("410", "Văn bản được thu hồi, cập nhật hoặc thay thế chưa từng được gửi"),
    "document.not_sender": ("411", "Chỉ đơn vị gửi mới thu hồi, cập nhật hoặc thay thế văn bản"),
    "document.not_recipient": ("412", "Văn bản thay thế nêu đơn vị chưa từng nhận văn bản"),
    "signature.invalid": ("501", "Chữ ký số không hợp lệ"),
    "signature.indeterminate": ("502", "Không xác định được tính hợp lệ của chữ ký số"),
    "signature.missing": ("503", "Gói tin chưa được ký số"),
    "signature.wrong_signer": ("504", "Người ký không được phép ký cho đơn vị gửi"),
    "package.not_found": ("601", "Không tìm thấy văn bản"),
    "delivery.not_delivered": ("602", "Văn bản chưa đến hộp thư của đơn vị"),
    "delivery.not_recipient": ("603", "Đơn vị không phải nơi nhận văn bản"),
    "report.not_found": ("604", "Văn bản chưa được kiểm tra chữ ký"),
    "receipt.pending": ("605", "Biên nhận đang được tạo, vui lòng thử lại"),
    "package.bytes_missing": ("606", "Nội dung văn bản đã lưu bị mất"),
    "package.recalled": ("611", "Văn bản đã bị đơn vị gửi thu hồi"),
    "push.invalid_url": ("620", "Địa chỉ nhận đẩy (webhook) không hợp lệ"),
    "push.unknown_agency": ("621", "Đơn vị đăng ký nhận đẩy không có trong danh bạ"),
    "push.not_found": ("622", "Không tìm thấy lần đẩy văn bản"),
    "push.not_retryable": ("623", "Văn bản đã được nhận, không đẩy lại"),
    "admin.disabled": ("630", "Chức năng quản trị chưa được bật"),
    "ledger.head_not_found": ("607", "Không có gốc sổ cái ở kích thước này"),
    "ledger.bad_proof_request": ("608", "Yêu cầu chứng minh sổ cái không hợp lệ"),
    "vdxp.registry_managed": ("610", "Danh bạ đơn vị do quản trị trục quản lý"),
    "sender.inactive": ("413", "Mã đơn vị gửi đã hết hiệu lực, hãy dùng mã kế thừa"),
    "agency.not_found": ("414", "Không có đơn vị này trong danh bạ (vào ngày đã hỏi)"),
    "report.out_of_scope": ("640", "Đơn vị chỉ xem được chỉ số của mình và đơn vị trực thuộc"),
    "console.bad_login": ("641", "Sai tên đăng nhập hoặc mật khẩu"),
    "console.locked": ("642", "Tài khoản tạm khóa do đăng nhập sai nhiều lần"),
    "console.csrf_invalid": ("643", "Phiên biểu mẫu không hợp lệ, vui lòng tải lại trang"),
    "console.forbidden": ("644", "Người dùng không có quyền thực hiện thao tác này"),
    "federation.not_peer": ("701", "Trục gửi không phải trục liên kết"),
    "federation.loop": ("702", "Gói tin đã đi qua trục này (vòng lặp)"),
    "federation.bad_message": ("703", "Thông điệp liên kết trục không hợp lệ"),
    "federation.sender_mismatch": ("704", "Đơn vị gửi trong gói tin khác thông điệp chuyển giao"),
    "federation.digest_mismatch": ("705", "Nội dung nhận từ trục khác không khớp mã băm"),
    "federation.fetch_failed": ("706", "Không lấy được gói tin từ trục gửi"),
    "federation.bad_head": ("707", "Gốc sổ cái của trục liên kết không đọc được"),
    "federation.bad_peer": ("708", "Thông tin trục liên kết không dùng được"),
    "federation.unknown_peer": ("709", "Không có trục liên kết này"),
    "federation.not_configured": ("710", "Trục chưa cấu hình liên kết (hub_id, chứng thư TLS)"),
    "federation.management_failed": ("711", "Không cấu hình được liên kết trên RabbitMQ"),
    "service.unavailable": ("901", "Hệ thống tạm thời không sẵn sàng, vui lòng thử lại"),
    "internal": ("999", "Lỗi hệ thống"),
}
OTHER_ERROR = ("998", "Lỗi khác")  # a code added to the hub but not yet to this table

Refusal = HubError | FormatError


def error_of(exc: Refusal) -> tuple[str, str]:
    """(ErrorCode, ErrorDesc): the Vietnamese description, then the hub's code and message
    (ASCII, so readable even where a client mangles non-ASCII)."""
    number, description = FACADE_ERRORS.get(exc.code, OTHER_ERROR)
    return number, f"{description} [{exc.code}] {exc.message}"


def _json(body: dict, exc: Refusal | None = None) -> web.Response:
    # ensure_ascii: see the module docstring. HTTP 200 whatever the outcome, except a wrong
    # method (which no SDK sends): 405 with Allow, as HTTP wants.
    response = web.Response(
        text=json.dumps(body, ensure_ascii=True, separators=(",", ":")),
        content_type="application/json",
        charset="utf-8",
    )
    if exc is not None and exc.code == "http.method_not_allowed":
        response.set_status(405)
        response.headers.update(getattr(exc, "headers", None) or {})
    return response


def ok(**fields: object) -> web.Response:
    """A VDXP success, with the fields the operation's SDK call reads."""
    return _json({"status": "OK", "ErrorCode": "0", "ErrorDesc": "Thành công", **fields})


def refusal(exc: Refusal) -> web.Response:
    """A VDXP failure: every key any SDK call reads is present (``DocId`` and ``data`` as
    ``""``), so the SDK reports the FAIL instead of a result full of nulls."""
    number, description = error_of(exc)
    return _json(
        {"status": "FAIL", "ErrorCode": number, "ErrorDesc": description, "DocId": "", "data": ""},
        exc,
    )


def lgsp_answer(data: object) -> web.Response:
    """An LGSP success."""
    return _json({"status": "OK", "errorCode": "0", "errorDesc": "Thành công", "data": data})


def lgsp_refusal(exc: Refusal) -> web.Response:
    """An LGSP failure (``data`` is null there: those clients read it only on success)."""
    number, description = error_of(exc)
    return _json(
        {"status": "FAIL", "errorCode": number, "errorDesc": description, "data": None}, exc
    )


def facade_envelope(request_start: bytes, code: str, message: str) -> bytes | None:
    """The facade's envelope (JSON bytes) of a refusal made before routing (a head too slow
    or too long), when the request line names a facade's path; None otherwise."""
    _, _, rest = request_start.lstrip(b"\r\n").partition(b" ")
    exc = HubError(code, message)
    if rest.startswith(b"/vdxp/"):
        return refusal(exc).body
    if rest.startswith(b"/lgsp/"):
        return lgsp_refusal(exc).body
    return None
