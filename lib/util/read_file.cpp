#include "util/read_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace cbir {

std::optional<std::string> read_whole_file(const std::filesystem::path& path, std::string& error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = std::string("cannot open: ") + std::strerror(errno);
        return std::nullopt;
    }
    std::ostringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) {
        error = "read error";
        return std::nullopt;
    }
    return buffer.str();
}

}  // namespace cbir
