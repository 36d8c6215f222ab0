#pragma once
// Writes a float32 matrix as a NumPy .npy file (format 1.0), atomically.
#include <filesystem>
#include <vector>

namespace cbir {

void write_npy_float32(const std::filesystem::path& path, const std::vector<float>& values, size_t rows, size_t columns);

}  // namespace cbir
