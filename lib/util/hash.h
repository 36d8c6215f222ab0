#pragma once
// Content hashes: SHA-256 (OpenSSL) names images and models; XXH3 (libxxhash) guards index files,
// where the point is detecting damage quickly, not identity.
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace cbir {

std::string sha256_hex(const void* data, size_t size);
// Reads the file in blocks; throws cbir::Error naming the file if it cannot be read.
std::string sha256_file_hex(const std::filesystem::path& path);

// XXH3's 128-bit hash: an identity for equal byte strings (vectors), not a checksum.
std::array<uint64_t, 2> xxh3_128(const void* data, size_t size);

class Xxh3Stream {
public:
    Xxh3Stream();
    ~Xxh3Stream();
    Xxh3Stream(const Xxh3Stream&) = delete;
    Xxh3Stream& operator=(const Xxh3Stream&) = delete;
    void update(const void* data, size_t size);
    uint64_t digest() const;

private:
    void* state_;
};

}  // namespace cbir
