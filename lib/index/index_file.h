#pragma once
// The self-describing container every derived index file uses: a fixed little-endian header (magic,
// format version, kind, dimension, metric, count, the catalogue state it was built from, the
// payload's size and XXH3 checksum) followed by the index library's own bytes and cbir's extension
// (groups of identical vectors). A reader checks the whole file before any index library parses it,
// so a truncated, foreign or damaged file is reported (and rebuilt from the catalogue) instead of
// being read out of bounds.
//
// Version 2 (128-byte header) added the store id and the catalogue's state token, which bind a file
// to the one catalogue state it was built from, and the extension. Version 1 files (80 bytes) are
// still read; they carry no identity, so a store that has one rebuilds them.
#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

#include "index/metric.h"
#include "util/error.h"

namespace cbir {

inline constexpr uint32_t kIndexFileFormatVersion = 2;

// Which state of which catalogue an index file was built from (see Catalogue::state_token).
struct CatalogueState {
    std::string store_id;  // 32 hex digits; empty in version-1 files
    uint64_t generation = 0;
    std::string token;  // 32 hex digits; empty in version-1 files
};

struct IndexFileHeader {
    uint32_t version = kIndexFileFormatVersion;
    std::string kind;  // at most 8 bytes, e.g. "hnsw"
    uint32_t dimension = 0;
    Metric metric = Metric::L2;
    uint64_t count = 0;
    CatalogueState built_from;
    std::array<uint32_t, 4> params{};  // kind-specific build parameters (hnsw: M, ef_construction)
};

// Thrown when an index file is missing, foreign, truncated, damaged or of a newer format.
class IndexFileError : public Error {
public:
    using Error::Error;
};

// An owned file descriptor holding a payload (an anonymous in-memory file).
class PayloadFile {
public:
    PayloadFile();  // creates an empty anonymous file
    ~PayloadFile();
    PayloadFile(PayloadFile&& other) noexcept;
    PayloadFile(const PayloadFile&) = delete;
    PayloadFile& operator=(const PayloadFile&) = delete;
    int fd() const { return fd_; }
    // A path that opens this same file, for libraries that only take paths.
    std::string proc_path() const;
    uint64_t size() const;
    void append(const void* data, size_t size);

private:
    int fd_ = -1;
};

// Writes header + payload + extension atomically (temporary file, fsync, rename).
void write_index_file(const std::filesystem::path& target, const IndexFileHeader& header, const PayloadFile& payload,
                      const std::string& extension);

// Reads only the header; checks magic, version and that the file is as long as the header says.
IndexFileHeader read_index_file_header(const std::filesystem::path& path);

// A read-only memory map of a verified index file: the index library's payload, then the extension.
class MappedPayload {
public:
    MappedPayload(void* mapping, size_t mapping_size, size_t payload_offset, size_t extension_size);
    ~MappedPayload();
    MappedPayload(MappedPayload&& other) noexcept;
    MappedPayload(const MappedPayload&) = delete;
    MappedPayload& operator=(const MappedPayload&) = delete;
    const unsigned char* data() const { return static_cast<const unsigned char*>(mapping_) + offset_; }
    size_t size() const { return mapping_size_ - offset_ - extension_size_; }
    const unsigned char* extension() const { return data() + size(); }
    size_t extension_size() const { return extension_size_; }

private:
    void* mapping_;
    size_t mapping_size_;
    size_t offset_;
    size_t extension_size_;
};

// Maps the file and verifies it whole (header and checksum) before anyone parses the payload.
MappedPayload map_index_file(const std::filesystem::path& path, IndexFileHeader& header);

// Bounds-checked reads from a payload that passed its checksum but is still untrusted: every read
// past the end throws IndexFileError("<what> is truncated or damaged").
class PayloadReader {
public:
    PayloadReader(const unsigned char* data, size_t size, std::string what) : data_(data), size_(size), what_(std::move(what)) {}
    template <typename T> T value() {
        T v;
        std::memcpy(&v, bytes(sizeof(T)), sizeof(T));
        return v;
    }
    const unsigned char* bytes(size_t n) {
        if (n > size_ - offset_) throw IndexFileError(what_ + " is truncated or damaged");
        const unsigned char* at = data_ + offset_;
        offset_ += n;
        return at;
    }
    bool at_end() const { return offset_ == size_; }
    size_t remaining() const { return size_ - offset_; }

private:
    const unsigned char* data_;
    size_t size_;
    size_t offset_ = 0;
    std::string what_;
};

}  // namespace cbir
