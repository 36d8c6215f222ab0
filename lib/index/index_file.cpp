#include "index/index_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <xxhash.h>

#include "util/atomic_file.h"
#include "util/fd_io.h"
#include "util/hash.h"

namespace cbir {
namespace {

constexpr char kMagic[8] = {'C', 'B', 'I', 'R', 'A', 'N', 'N', '\0'};
constexpr size_t kHeaderSizeV1 = 80;
constexpr size_t kHeaderSize = 128;
// Version 3's checksum chunks: small enough that a query's first touch of a record checks little
// more than the record (a 512-d HNSW record is 2.3 KiB), large enough that the table stays small
// (1.1 MiB for a 2.2 GiB file).
constexpr unsigned kChunkLog2 = 14;
constexpr unsigned kMinChunkLog2 = 12, kMaxChunkLog2 = 24;

uint64_t chunk_count(uint64_t payload_size, unsigned log2) { return (payload_size + (uint64_t(1) << log2) - 1) >> log2; }
uint64_t chunk_checksum(const void* data, size_t size, uint64_t chunk) { return XXH3_64bits_withSeed(data, size, chunk); }

// The header's checksum (version 3): the header with its checksum field zeroed, then the table.
uint64_t header_checksum(const unsigned char* header, const unsigned char* table, size_t table_bytes) {
    unsigned char copy[kHeaderSize];
    std::memcpy(copy, header, kHeaderSize);
    std::memset(copy + 72, 0, 8);
    Xxh3Stream sum;
    sum.update(copy, kHeaderSize);
    sum.update(table, table_bytes);
    return sum.digest();
}

void put_u32(unsigned char* at, uint32_t v) {
    for (int i = 0; i < 4; ++i) at[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put_u64(unsigned char* at, uint64_t v) {
    for (int i = 0; i < 8; ++i) at[i] = static_cast<unsigned char>(v >> (8 * i));
}
uint32_t get_u32(const unsigned char* at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(at[i]) << (8 * i);
    return v;
}
uint64_t get_u64(const unsigned char* at) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(at[i]) << (8 * i);
    return v;
}

// 32 hex digits <-> 16 bytes; an empty id is 16 zero bytes.
void put_id(unsigned char* at, const std::string& hex) {
    std::memset(at, 0, 16);
    if (hex.size() != 32) return;
    for (size_t i = 0; i < 16; ++i) at[i] = static_cast<unsigned char>(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
}
std::string get_id(const unsigned char* at) {
    static const unsigned char zero[16] = {};
    if (std::memcmp(at, zero, 16) == 0) return "";
    std::string hex;
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < 16; ++i) {
        hex += digits[at[i] >> 4];
        hex += digits[at[i] & 15];
    }
    return hex;
}

struct RawHeader {
    IndexFileHeader header;
    size_t header_size = kHeaderSize;
    uint64_t payload_size = 0;  // the library's bytes and the extension
    uint64_t payload_checksum = 0;
    uint64_t extension_size = 0;
    unsigned chunk_log2 = 0;  // version 3
    uint64_t table_bytes = 0;
};

void encode(const IndexFileHeader& h, uint64_t payload_size, uint64_t checksum, uint64_t extension_size,
            unsigned char* out) {
    std::memset(out, 0, kHeaderSize);
    std::memcpy(out, kMagic, 8);
    put_u32(out + 8, kIndexFileFormatVersion);
    put_u32(out + 12, static_cast<uint32_t>(kHeaderSize));
    std::memcpy(out + 16, h.kind.data(), std::min<size_t>(h.kind.size(), 8));
    put_u32(out + 24, h.dimension);
    put_u32(out + 28, static_cast<uint32_t>(h.metric));
    put_u64(out + 32, h.count);
    put_u64(out + 40, h.built_from.generation);
    for (int i = 0; i < 4; ++i) put_u32(out + 48 + 4 * i, h.params[i]);
    put_u64(out + 64, payload_size);
    put_u64(out + 72, checksum);
    put_id(out + 80, h.built_from.store_id);
    put_id(out + 96, h.built_from.token);
    put_u64(out + 112, extension_size);
    put_u32(out + 120, kChunkLog2);
}

// `in` holds at least kHeaderSize bytes, or the whole file when it is shorter.
RawHeader decode(const std::filesystem::path& path, const unsigned char* in, uint64_t file_size) {
    const std::string name = path.string();
    if (std::memcmp(in, kMagic, 8) != 0) throw IndexFileError(name + ": not a cbir index file (bad magic)");
    const uint32_t version = get_u32(in + 8);
    if (version > kIndexFileFormatVersion)
        throw IndexFileError(name + ": index format version " + std::to_string(version) +
                             " is newer than this cbir understands (" + std::to_string(kIndexFileFormatVersion) + ")");
    const size_t header_size = version == 1 ? kHeaderSizeV1 : kHeaderSize;
    if (version == 0 || get_u32(in + 12) != header_size || file_size < header_size)
        throw IndexFileError(name + ": damaged index header");
    RawHeader raw;
    raw.header.version = version;
    raw.header_size = header_size;
    raw.header.kind.assign(reinterpret_cast<const char*>(in + 16), strnlen(reinterpret_cast<const char*>(in + 16), 8));
    raw.header.dimension = get_u32(in + 24);
    const uint32_t metric = get_u32(in + 28);
    if (metric > static_cast<uint32_t>(Metric::Cosine)) throw IndexFileError(name + ": unknown metric in index header");
    raw.header.metric = static_cast<Metric>(metric);
    raw.header.count = get_u64(in + 32);
    raw.header.built_from.generation = get_u64(in + 40);
    for (int i = 0; i < 4; ++i) raw.header.params[i] = get_u32(in + 48 + 4 * i);
    raw.payload_size = get_u64(in + 64);
    raw.payload_checksum = get_u64(in + 72);
    if (version >= 2) {
        raw.header.built_from.store_id = get_id(in + 80);
        raw.header.built_from.token = get_id(in + 96);
        raw.extension_size = get_u64(in + 112);
    }
    if (version >= 3) {
        raw.chunk_log2 = get_u32(in + 120);
        if (raw.chunk_log2 < kMinChunkLog2 || raw.chunk_log2 > kMaxChunkLog2 || raw.payload_size > file_size)
            throw IndexFileError(name + ": damaged index header");
        raw.table_bytes = 8 * chunk_count(raw.payload_size, raw.chunk_log2);
    }
    if (raw.payload_size + raw.table_bytes != file_size - header_size)
        throw IndexFileError(name + ": truncated or extended index file (header says " +
                             std::to_string(raw.payload_size + raw.table_bytes + header_size) + " bytes, file has " +
                             std::to_string(file_size) + ")");
    if (raw.extension_size > raw.payload_size) throw IndexFileError(name + ": damaged index header (extension size)");
    return raw;
}

class InputFile {
public:
    explicit InputFile(const std::filesystem::path& path) : path_(path) {
        fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) throw IndexFileError(path.string() + ": cannot open index file: " + std::strerror(errno));
        struct stat st {};
        if (::fstat(fd_, &st) != 0) throw IndexFileError(path.string() + ": cannot stat: " + std::strerror(errno));
        size_ = static_cast<uint64_t>(st.st_size);
    }
    ~InputFile() { ::close(fd_); }
    RawHeader header() {
        unsigned char bytes[kHeaderSize] = {};
        const size_t wanted = static_cast<size_t>(std::min<uint64_t>(size_, kHeaderSize));
        if (size_ < kHeaderSizeV1 || ::pread(fd_, bytes, wanted, 0) != static_cast<ssize_t>(wanted))
            throw IndexFileError(path_.string() + ": too short to be a cbir index file");
        return decode(path_, bytes, size_);
    }
    int fd() const { return fd_; }

private:
    std::filesystem::path path_;
    int fd_ = -1;
    uint64_t size_ = 0;
};

}  // namespace

PayloadFile::PayloadFile() {
    fd_ = ::memfd_create("cbir-index-payload", MFD_CLOEXEC);
    if (fd_ < 0) throw Error(std::string("cannot create an in-memory file: ") + std::strerror(errno));
}
PayloadFile::~PayloadFile() {
    if (fd_ >= 0) ::close(fd_);
}
PayloadFile::PayloadFile(PayloadFile&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
void PayloadFile::append(const void* data, size_t size) {
    if (!write_fully(fd_, data, size)) throw Error(std::string("cannot write in-memory file: ") + std::strerror(errno));
}

std::string PayloadFile::proc_path() const { return "/proc/self/fd/" + std::to_string(fd_); }
uint64_t PayloadFile::size() const {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw Error(std::string("cannot stat in-memory file: ") + std::strerror(errno));
    return static_cast<uint64_t>(st.st_size);
}

namespace {

// Checksums of consecutive chunks of a byte stream.
class ChunkHasher {
public:
    ChunkHasher() : state_(XXH3_createState()) {
        if (!state_) throw Error("out of memory for XXH3 state");
        XXH3_64bits_reset_withSeed(state_, 0);
    }
    ~ChunkHasher() { XXH3_freeState(state_); }
    void update(const void* data, size_t size) {
        const char* at = static_cast<const char*>(data);
        const size_t chunk = size_t(1) << kChunkLog2;
        while (size > 0) {
            const size_t n = std::min(size, chunk - filled_);
            XXH3_64bits_update(state_, at, n);
            filled_ += n;
            at += n;
            size -= n;
            if (filled_ == chunk) next();
        }
    }
    // The table, little-endian, once the stream has ended.
    std::string table() {
        if (filled_ > 0) next();
        std::string out(8 * sums_.size(), '\0');
        for (size_t i = 0; i < sums_.size(); ++i) put_u64(reinterpret_cast<unsigned char*>(&out[8 * i]), sums_[i]);
        return out;
    }

private:
    void next() {
        sums_.push_back(XXH3_64bits_digest(state_));
        XXH3_64bits_reset_withSeed(state_, sums_.size());
        filled_ = 0;
    }
    XXH3_state_t* state_;
    size_t filled_ = 0;
    std::vector<uint64_t> sums_;
};

}  // namespace

void write_index_file(const std::filesystem::path& target, const IndexFileHeader& header, const PayloadFile& payload,
                      const std::string& extension) {
    AtomicFileWriter out(target);
    unsigned char bytes[kHeaderSize];
    encode(header, 0, 0, 0, bytes);
    out.write(bytes, kHeaderSize);  // patched below once size and checksum are known
    ChunkHasher chunks;
    std::vector<char> block(1 << 20);
    uint64_t offset = 0;
    for (;;) {
        ssize_t n = ::pread(payload.fd(), block.data(), block.size(), static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw Error(std::string("cannot read index payload: ") + std::strerror(errno));
        if (n == 0) break;
        chunks.update(block.data(), static_cast<size_t>(n));
        out.write(block.data(), static_cast<size_t>(n));
        offset += static_cast<uint64_t>(n);
    }
    chunks.update(extension.data(), extension.size());
    out.write(extension.data(), extension.size());
    const std::string table = chunks.table();
    out.write(table.data(), table.size());
    encode(header, offset + extension.size(), 0, extension.size(), bytes);
    put_u64(bytes + 72, header_checksum(bytes, reinterpret_cast<const unsigned char*>(table.data()), table.size()));
    out.write_at(0, bytes, kHeaderSize);
    out.commit();
}

IndexFileHeader read_index_file_header(const std::filesystem::path& path) {
    InputFile in(path);
    return in.header().header;
}

MappedPayload::MappedPayload(void* mapping, size_t mapping_size, size_t payload_offset, size_t extension_size,
                             std::string name, unsigned chunk_log2, std::vector<uint64_t> chunk_checksums)
    : mapping_(mapping), mapping_size_(mapping_size), offset_(payload_offset), extension_size_(extension_size),
      table_bytes_(8 * chunk_checksums.size()), name_(std::move(name)), chunk_log2_(chunk_log2),
      chunk_checksums_(std::move(chunk_checksums)) {
    const size_t chunks = chunk_checksums_.size();
    chunk_verified_.reset(new std::atomic<uint8_t>[chunks > 0 ? chunks : 1]);
    for (size_t i = 0; i < chunks; ++i) chunk_verified_[i].store(0, std::memory_order_relaxed);
    unverified_chunks_.store(chunks);
    all_verified_.store(chunks == 0);
}

MappedPayload::~MappedPayload() {
    if (mapping_) ::munmap(mapping_, mapping_size_);
}

void MappedPayload::verify_chunk(size_t chunk) const {
    if (chunk_verified_[chunk].load(std::memory_order_acquire)) return;
    const size_t payload_bytes = size() + extension_size_;
    const size_t begin = chunk << chunk_log2_;
    const size_t length = std::min(payload_bytes - begin, size_t(1) << chunk_log2_);
    if (chunk_checksum(data() + begin, length, chunk) != chunk_checksums_[chunk])
        throw IndexFileError(name_ + ": index file is damaged (checksum mismatch in payload bytes " + std::to_string(begin) +
                             "-" + std::to_string(begin + length) + ")");
    // Two threads may check the same chunk at once; only the one that marks it counts it.
    if (chunk_verified_[chunk].exchange(1, std::memory_order_acq_rel) == 0 &&
        unverified_chunks_.fetch_sub(1, std::memory_order_acq_rel) == 1)
        all_verified_.store(true, std::memory_order_release);
}

void MappedPayload::verify_range(const void* at, size_t length) const {
    if (length == 0) return;
    const auto* p = static_cast<const unsigned char*>(at);
    const size_t payload_bytes = size() + extension_size_;
    if (p < data() || static_cast<size_t>(p - data()) > payload_bytes || length > payload_bytes - static_cast<size_t>(p - data()))
        throw IndexFileError(name_ + ": read outside the index payload");
    const size_t begin = static_cast<size_t>(p - data());
    for (size_t chunk = begin >> chunk_log2_; chunk <= (begin + length - 1) >> chunk_log2_; ++chunk) verify_chunk(chunk);
}

void MappedPayload::verify_all() const {
    for (size_t chunk = 0; chunk < chunk_checksums_.size() && !all_verified(); ++chunk) verify_chunk(chunk);
}

void MappedPayload::advise_random(const void* at, size_t length) const {
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t begin = reinterpret_cast<uintptr_t>(at) & ~(page - 1);
    ::madvise(reinterpret_cast<void*>(begin), reinterpret_cast<uintptr_t>(at) + length - begin, MADV_RANDOM);
}

namespace {

// The whole file in anonymous memory, read-only once filled; null (errno set) when it cannot be.
void* copy_of_file(int fd, size_t size, const std::string& name) {
    void* copy = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (copy == MAP_FAILED) return nullptr;
    auto* at = static_cast<char*>(copy);
    for (size_t done = 0; done < size;) {
        const ssize_t n = ::pread(fd, at + done, size - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ::munmap(copy, size);
            throw IndexFileError(name + ": the index file changed or could not be read while it was copied" +
                                 (n < 0 ? std::string(": ") + std::strerror(errno) : std::string()));
        }
        done += static_cast<size_t>(n);
    }
    ::mprotect(copy, size, PROT_READ);
    return copy;
}

}  // namespace

std::shared_ptr<const MappedPayload> open_index_file(const std::filesystem::path& path, IndexFileHeader& header,
                                                     IndexFileHolding holding) {
    InputFile in(path);
    const RawHeader raw = in.header();
    const std::string name = path.string();
    std::vector<uint64_t> table;
    if (raw.header.version >= 3) {
        // The table and header are checked before anything in them is believed.
        std::vector<unsigned char> bytes(kHeaderSize + raw.table_bytes);
        const off_t table_at = static_cast<off_t>(raw.header_size + raw.payload_size);
        if (::pread(in.fd(), bytes.data(), kHeaderSize, 0) != static_cast<ssize_t>(kHeaderSize) ||
            ::pread(in.fd(), bytes.data() + kHeaderSize, raw.table_bytes, table_at) != static_cast<ssize_t>(raw.table_bytes))
            throw IndexFileError(name + ": cannot read the index file's checksum table");
        if (header_checksum(bytes.data(), bytes.data() + kHeaderSize, raw.table_bytes) != raw.payload_checksum)
            throw IndexFileError(name + ": index file is damaged (checksum mismatch in its header or checksum table)");
        table.resize(raw.table_bytes / 8);
        for (size_t i = 0; i < table.size(); ++i) table[i] = get_u64(bytes.data() + kHeaderSize + 8 * i);
    }
    const size_t file_size = static_cast<size_t>(raw.payload_size + raw.table_bytes + raw.header_size);
    // Mapped, not populated: pages are read as they are touched.
    void* mapping = holding == IndexFileHolding::Copied ? copy_of_file(in.fd(), file_size, name)
                                                        : ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, in.fd(), 0);
    if (mapping == MAP_FAILED || mapping == nullptr)
        throw IndexFileError(name + ": cannot " + (holding == IndexFileHolding::Copied ? "copy" : "map") +
                             " index file: " + std::strerror(errno));
    auto payload = std::make_shared<const MappedPayload>(mapping, file_size, raw.header_size,
                                                         static_cast<size_t>(raw.extension_size), name, raw.chunk_log2,
                                                         std::move(table));
    if (raw.header.version < 3) {
        Xxh3Stream checksum;
        checksum.update(payload->data(), payload->size() + payload->extension_size());
        if (checksum.digest() != raw.payload_checksum) throw IndexFileError(name + ": index file is damaged (checksum mismatch)");
    }
    if (holding == IndexFileHolding::Copied) payload->verify_all();  // every byte was read anyway
    header = raw.header;
    return payload;
}

std::shared_ptr<const MappedPayload> map_index_file(const std::filesystem::path& path, IndexFileHeader& header) {
    IndexFileHeader read;
    auto payload = open_index_file(path, read, IndexFileHolding::Mapped);
    payload->verify_all();
    header = read;
    return payload;
}

}  // namespace cbir
