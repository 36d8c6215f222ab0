#pragma once
// The catalogue's key for a file: the one rule for turning a path the user typed into the string a
// row is stored under, so that "photos", "./photos/" and "/abs/photos" all name the same rows.
#include <filesystem>
#include <string>

namespace cbir {

// Absolute, lexically normal ("." and ".." folded), without a trailing separator. Symlinks are not
// resolved: a file is catalogued under the path it was reached by.
std::string catalogue_key(const std::filesystem::path& path);

// Whether the key `path` is `folder` or lies below it (both catalogue keys).
bool key_is_under(const std::string& path, const std::string& folder);

}  // namespace cbir
