#include "output/npy_writer.h"

#include <string>

#include "util/atomic_file.h"
#include "util/error.h"

namespace cbir {

void write_npy_float32(const std::filesystem::path& path, const std::vector<float>& values, size_t rows, size_t columns) {
    if (values.size() != rows * columns) throw Error("npy: matrix size does not match its shape");
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                         std::to_string(columns) + "), }";
    // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64 bytes.
    const size_t unpadded = 10 + header.size() + 1;
    header.append((64 - unpadded % 64) % 64, ' ');
    header += '\n';
    std::string preamble = "\x93NUMPY";
    preamble += static_cast<char>(1);
    preamble += static_cast<char>(0);
    preamble += static_cast<char>(header.size() & 0xFF);
    preamble += static_cast<char>(header.size() >> 8);
    AtomicFileWriter out(path);
    out.write(preamble.data(), preamble.size());
    out.write(header.data(), header.size());
    out.write(values.data(), values.size() * sizeof(float));  // little-endian hosts only (x86-64, arm64)
    out.commit();
}

}  // namespace cbir
