#pragma once
// What a file is to the store, in one place for index, query and serve: the key its row is stored
// under, whether that row is current, the row a decoded file becomes, and the row whose vector an
// identical file may take instead of being embedded again.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "store/catalogue.h"
#include "util/file_stat.h"

namespace cbir {

// Absolute, lexically normal ("." and ".." folded), without a trailing separator, so that "photos",
// "./photos/" and "/abs/photos" name the same rows. Symlinks are not resolved: a file is catalogued
// under the path it was reached by.
std::string catalogue_key(const std::filesystem::path& path);

// Whether the key `path` is `folder` or lies below it (both catalogue keys).
bool key_is_under(const std::string& path, const std::string& folder);

// The row was made from the file as it is now: same size and mtime. `index` skips such a file, and
// `query` and `serve` use the row's vector instead of decoding it again.
bool row_is_current(const FileStat& file, int64_t row_size, int64_t row_mtime_ns);

// The catalogue row of a decoded and embedded file.
ImageRecord image_record(std::string key, const FileStat& file, std::string sha256, int width, int height,
                         std::vector<float> vector);

// A row with exactly this content and a vector of `dimension` floats: a moved or copied file, or a
// second upload of the same bytes, takes its vector (the same bytes give the same vector).
std::optional<ImageRecord> row_with_content(const Catalogue& catalogue, const std::string& sha256, int dimension);

}  // namespace cbir
