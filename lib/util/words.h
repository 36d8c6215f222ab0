#pragma once
// Counts in words: "1 image", "2 images".
#include <string>

namespace cbir {

inline std::string counted(unsigned long long n, const std::string& singular, const std::string& plural = {}) {
    return std::to_string(n) + " " + (n == 1 ? singular : plural.empty() ? singular + "s" : plural);
}

}  // namespace cbir
