#include "output/npy_writer.h"

#include <string>

#include <fmt/format.h>

#include "util/atomic_file.h"
#include "util/error.h"

namespace cbir {
namespace {

std::string npy_preamble(const std::string& descr, const std::vector<size_t>& shape) {
    std::string dims;  // "n," for one dimension, "n, m" for two
    for (size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
    if (shape.size() == 1) dims += ",";
    std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
    // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64 bytes.
    const size_t unpadded = 10 + header.size() + 1;
    header.append((64 - unpadded % 64) % 64, ' ');
    header += '\n';
    std::string preamble = "\x93NUMPY";
    preamble += static_cast<char>(1);
    preamble += static_cast<char>(0);
    preamble += static_cast<char>(header.size() & 0xFF);
    preamble += static_cast<char>(header.size() >> 8);
    return preamble + header;
}

}  // namespace

void write_npy_float32(const std::filesystem::path& path, const std::vector<float>& values, size_t rows, size_t columns) {
    if (values.size() != rows * columns) throw Error("npy: matrix size does not match its shape");
    NpyStreamWriter out(path, "<f4", {rows, columns}, sizeof(float));
    out.append(values.data(), values.size() * sizeof(float));  // little-endian hosts only (x86-64, arm64)
    out.commit();
}

NpyStreamWriter::NpyStreamWriter(std::filesystem::path path, const std::string& descr, std::vector<size_t> shape,
                                 size_t item_bytes)
    : path_(std::move(path)), out_(std::make_unique<AtomicFileWriter>(path_)) {
    expected_ = item_bytes;
    for (size_t d : shape) expected_ *= d;
    const std::string preamble = npy_preamble(descr, shape);
    out_->write(preamble.data(), preamble.size());
}

NpyStreamWriter::~NpyStreamWriter() = default;

void NpyStreamWriter::append(const void* data, size_t bytes) {
    out_->write(data, bytes);
    written_ += bytes;
}

void NpyStreamWriter::commit() {
    if (written_ != expected_)
        throw Error(fmt::format("{}: {} bytes of data written, the shape needs {}", path_.string(), written_, expected_));
    out_->commit();
}

}  // namespace cbir
