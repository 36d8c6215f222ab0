#include "image/image_file.h"

#include "image/image_header.h"
#include "image/limits.h"
#include "util/byte_text.h"
#include "util/read_file.h"

namespace cbir {
namespace {

// Enough for the header of nearly every image (a JPEG's EXIF block is at most 64 KiB; a header that
// runs further is read with the whole file, which the file cap bounds).
constexpr size_t kHeaderBytes = 64 << 10;

// False with `error` set when the header refuses the image or is over the pixel cap.
bool header_allows(const HeaderRead& header, std::string& error) {
    if (header.status == HeaderRead::Status::refused) {
        error = header.error;
        return false;
    }
    if (header.status == HeaderRead::Status::complete) error = image_limit_error(header.header);
    return error.empty();
}

// `header_only`: stop once the header is known to allow the image (the bytes are then not kept).
ImageFile read_checked(const std::filesystem::path& path, bool header_only) {
    ImageFile out;
    auto file = RegularFile::open(path, out.error);
    if (!file) return out;
    out.stat = file->stat();
    out.error = file_size_limit_error(static_cast<uint64_t>(out.stat.size));
    if (!out.ok()) return out;

    std::string bytes;
    if (!file->read_until(bytes, kHeaderBytes, out.error)) return out;
    if (bytes.empty()) {
        out.error = "empty file";
        return out;
    }
    HeaderRead header = read_image_header(bytes, /*whole=*/bytes.size() < kHeaderBytes);
    if (!header_allows(header, out.error)) return out;
    if (header_only && header.status == HeaderRead::Status::complete) return out;

    // One byte past the cap tells a file that grew since it was opened.
    const uint64_t cap = max_image_file_bytes();
    if (!file->read_until(bytes, cap >= SIZE_MAX ? SIZE_MAX : static_cast<size_t>(cap) + 1, out.error)) return out;
    if (bytes.size() > cap) {
        out.error = file_size_limit_error(bytes.size());
        return out;
    }
    if (header.status == HeaderRead::Status::need_more_bytes) {
        header = read_image_header(bytes);
        if (!header_allows(header, out.error)) return out;
    }
    if (!header_only) out.bytes = std::move(bytes);
    return out;
}

}  // namespace

ImageFile read_image_file(const std::filesystem::path& path) {
    ImageFile out = read_checked(path, /*header_only=*/false);
    out.error = one_line(out.error);  // the header readers' libraries write messages of several lines
    return out;
}

std::string image_file_refusal(const std::filesystem::path& path) {
    return one_line(read_checked(path, /*header_only=*/true).error);
}

}  // namespace cbir
