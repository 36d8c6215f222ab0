#include "store/catalogue_key.h"

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

}  // namespace cbir
