#include "store/file_identity.h"

namespace cbir {

std::string catalogue_key(const std::filesystem::path& path) {
    std::string key = std::filesystem::absolute(path).lexically_normal().string();
    while (key.size() > 1 && key.back() == '/') key.pop_back();
    return key;
}

bool key_is_under(const std::string& path, const std::string& folder) {
    if (path.compare(0, folder.size(), folder) != 0) return false;
    return path.size() == folder.size() || folder.back() == '/' || path[folder.size()] == '/';
}

bool row_is_current(const FileStat& file, int64_t row_size, int64_t row_mtime_ns) {
    return file.size == row_size && file.mtime_ns == row_mtime_ns;
}

ImageRecord image_record(std::string key, const FileStat& file, std::string sha256, int width, int height,
                         std::vector<float> vector) {
    ImageRecord record;
    record.path = std::move(key);
    record.size = file.size;
    record.mtime_ns = file.mtime_ns;
    record.sha256 = std::move(sha256);
    record.width = width;
    record.height = height;
    record.vector = std::move(vector);
    return record;
}

std::optional<ImageRecord> row_with_content(const Catalogue& catalogue, const std::string& sha256, int dimension) {
    auto row = catalogue.find_by_sha256(sha256);
    if (!row || row->vector.size() != static_cast<size_t>(dimension)) return std::nullopt;
    return row;
}

}  // namespace cbir
