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
//
// Version 3 opens a million-vector file at once: the payload is checksummed in chunks (16 KiB, XXH3
// seeded with the chunk's number), the table of chunk checksums follows the payload, and the
// header's checksum covers the header and that table. Opening reads and checks only the header and
// the table and maps the file; a chunk is checked the first time anyone reads it (MappedPayload::
// verify), so nothing is parsed or searched from bytes that were not checked, and only what is
// touched is read. Versions 1 and 2 (one checksum over the whole payload) are checked whole at open.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>
#include <cstring>
#include <filesystem>
#include <string>

#include "index/metric.h"
#include "util/error.h"

namespace cbir {

inline constexpr uint32_t kIndexFileFormatVersion = 3;

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
    // Kind-specific parameters: hnsw M, ef_construction, tombstones (from version 3), and for SQ8 the
    // number of vectors its quantizer was trained on; ivf nlist, PQ m, PQ bits, training size.
    std::array<uint32_t, 4> params{};
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

// A read-only memory map (MAP_PRIVATE) of an index file, or a read-only copy of it in anonymous
// memory (IndexFileHolding), whose header and chunk table were checked:
// the index library's payload, then the extension. Bytes are trusted only once verify() has passed
// over them. An index file is only ever replaced by a rename, never written in place, so a map stays
// valid (and consistent with its table) while a newer file takes the name.
class MappedPayload {
public:
    MappedPayload(void* mapping, size_t mapping_size, size_t payload_offset, size_t extension_size,
                  std::string name, unsigned chunk_log2, std::vector<uint64_t> chunk_checksums);
    ~MappedPayload();
    MappedPayload(const MappedPayload&) = delete;
    MappedPayload& operator=(const MappedPayload&) = delete;
    const unsigned char* data() const { return static_cast<const unsigned char*>(mapping_) + offset_; }
    size_t size() const { return mapping_size_ - offset_ - extension_size_ - table_bytes_; }
    const unsigned char* extension() const { return data() + size(); }
    size_t extension_size() const { return extension_size_; }
    const std::string& name() const { return name_; }

    // Checks the chunks holding [at, at + length) of the payload (or extension) on first use;
    // throws IndexFileError ("... damaged (checksum mismatch ...)") if one differs. Thread-safe.
    void verify(const void* at, size_t length) const {
        if (!all_verified_.load(std::memory_order_acquire)) verify_range(at, length);
    }
    void verify_all() const;
    bool all_verified() const { return all_verified_.load(std::memory_order_acquire); }
    // Hints for the kernel's read-ahead: random for graph records, the default elsewhere.
    void advise_random(const void* at, size_t length) const;

private:
    void verify_range(const void* at, size_t length) const;
    void verify_chunk(size_t chunk) const;
    void* mapping_;
    size_t mapping_size_;
    size_t offset_;
    size_t extension_size_;
    size_t table_bytes_ = 0;
    std::string name_;
    unsigned chunk_log2_;
    std::vector<uint64_t> chunk_checksums_;  // empty: the whole payload was checked at open
    mutable std::unique_ptr<std::atomic<uint8_t>[]> chunk_verified_;
    mutable std::atomic<size_t> unverified_chunks_{0};
    mutable std::atomic<bool> all_verified_{false};
};

// How a reader holds an index file's bytes. A command maps the file: a million-vector index opens
// at once and only what its searches touch is read and checked. A long-lived reader (cbir serve)
// copies it into memory of its own and checks all of it: a mapping shows whatever is later written
// into the file in place (cp or rsync --inplace over it, a truncate), which a server would search
// unchecked, or die of (SIGBUS), for as long as it runs; a copy is immune.
enum class IndexFileHolding { Mapped, Copied };

// Opens an index file for use: checks the header and chunk table (version 3) or the whole payload
// (versions 1 and 2) and maps or copies it. Mapped chunks are verified as they are read.
std::shared_ptr<const MappedPayload> open_index_file(const std::filesystem::path& path, IndexFileHeader& header,
                                                     IndexFileHolding holding);
// The same, with every chunk verified before it returns (cbir check, tests).
std::shared_ptr<const MappedPayload> map_index_file(const std::filesystem::path& path, IndexFileHeader& header);

// Bounds-checked reads from a payload that passed its checksum but is still untrusted: every read
// past the end throws IndexFileError("<what> is truncated or damaged").
// With a `mapped` payload, every byte handed out is verified first.
class PayloadReader {
public:
    PayloadReader(const unsigned char* data, size_t size, std::string what, const MappedPayload* mapped = nullptr)
        : data_(data), size_(size), what_(std::move(what)), mapped_(mapped) {}
    template <typename T> T value() {
        T v;
        std::memcpy(&v, bytes(sizeof(T)), sizeof(T));
        return v;
    }
    const unsigned char* bytes(size_t n) {
        if (n > size_ - offset_) throw IndexFileError(what_ + " is truncated or damaged");
        const unsigned char* at = data_ + offset_;
        offset_ += n;
        if (mapped_) mapped_->verify(at, n);
        return at;
    }
    // Passes over n bytes without verifying them (their reader verifies what it touches).
    const unsigned char* skip(size_t n) {
        if (n > size_ - offset_) throw IndexFileError(what_ + " is truncated or damaged");
        const unsigned char* at = data_ + offset_;
        offset_ += n;
        return at;
    }
    size_t offset() const { return offset_; }
    bool at_end() const { return offset_ == size_; }
    size_t remaining() const { return size_ - offset_; }

private:
    const unsigned char* data_;
    size_t size_;
    size_t offset_ = 0;
    std::string what_;
    const MappedPayload* mapped_;
};

}  // namespace cbir
