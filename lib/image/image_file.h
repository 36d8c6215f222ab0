#pragma once
// The one way cbir reads an image file: open it; refuse what is not a regular file, and a file
// larger than the file cap, from its size alone; read its first bytes and refuse an unknown format
// or a header over the pixel cap before reading the rest; then read the rest, still within the cap.
// Decoding (decode.h) reads the header again from all the bytes, so bytes that did not come from a
// file (an upload) meet the same checks.
#include <filesystem>
#include <string>

#include "util/file_stat.h"

namespace cbir {

struct ImageFile {
    std::string bytes;  // the whole file; empty on failure
    FileStat stat;      // of the opened file (size and mtime of what was read)
    std::string error;  // why it was refused; empty on success
    bool ok() const { return error.empty(); }
};

ImageFile read_image_file(const std::filesystem::path& path);

}  // namespace cbir
