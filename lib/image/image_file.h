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

// Why read_image_file would refuse the file, from the same checks up to its header (the whole file
// only when the header lies past the first bytes), or empty: for commands that should refuse a bad
// query image before the costly start of the model. Decoding may still fail on damaged data.
std::string image_file_refusal(const std::filesystem::path& path);

}  // namespace cbir
