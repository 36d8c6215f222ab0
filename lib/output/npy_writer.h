#pragma once
// NumPy .npy files (format 1.0), written atomically: a whole matrix at once, or streamed row by row
// when it is larger than memory (an export of millions of vectors).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace cbir {

class AtomicFileWriter;

void write_npy_float32(const std::filesystem::path& path, const std::vector<float>& values, size_t rows, size_t columns);

// descr is NumPy's type string ("<f4", "<i8", "<U37"); shape is (rows) or (rows, columns).
class NpyStreamWriter {
public:
    NpyStreamWriter(std::filesystem::path path, const std::string& descr, std::vector<size_t> shape, size_t item_bytes);
    ~NpyStreamWriter();
    void append(const void* data, size_t bytes);
    // Throws cbir::Error unless exactly the shape's bytes were appended.
    void commit();

private:
    std::filesystem::path path_;
    std::unique_ptr<AtomicFileWriter> out_;
    uint64_t expected_ = 0;
    uint64_t written_ = 0;
};

}  // namespace cbir
