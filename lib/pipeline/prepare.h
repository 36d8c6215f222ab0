#pragma once
// One image file, read once: its identity (size, mtime, sha256), its pixel size and the
// preprocessed model input. Used by the indexer's reader threads and by queries.
#include <filesystem>
#include <string>
#include <vector>

#include "image/preprocess.h"
#include "util/file_stat.h"

namespace cbir {

struct PreparedImage {
    std::filesystem::path path;  // as given
    FileStat stat;
    std::string sha256;
    int width = 0;
    int height = 0;
    std::vector<float> input;  // spec.values_per_image() floats, CHW
    std::string error;         // why the file was skipped; empty on success
    bool ok() const { return error.empty(); }
};

// The file is read by read_image_file (image/image_file.h): its size and header are checked first.
PreparedImage prepare_image(const std::filesystem::path& path, const PreprocessSpec& spec);
// The same for an image already in memory (an upload): no file, so no stat.
PreparedImage prepare_image_bytes(const std::string& bytes, const PreprocessSpec& spec);

}  // namespace cbir
