#include "util/hash.h"

#include <openssl/evp.h>
#include <xxhash.h>

#include <fstream>
#include <memory>
#include <vector>

#include "util/error.h"

namespace cbir {
namespace {

struct DigestContext {
    DigestContext() : ctx(EVP_MD_CTX_new()) {
        if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) throw Error("OpenSSL: cannot start SHA-256");
    }
    ~DigestContext() { EVP_MD_CTX_free(ctx); }
    void update(const void* data, size_t size) { EVP_DigestUpdate(ctx, data, size); }
    std::string hex() {
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int length = 0;
        EVP_DigestFinal_ex(ctx, digest, &length);
        static const char* digits = "0123456789abcdef";
        std::string out;
        for (unsigned i = 0; i < length; ++i) {
            out += digits[digest[i] >> 4];
            out += digits[digest[i] & 15];
        }
        return out;
    }
    EVP_MD_CTX* ctx;
};

}  // namespace

std::string sha256_hex(const void* data, size_t size) {
    DigestContext digest;
    digest.update(data, size);
    return digest.hex();
}

std::string sha256_file_hex(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path.string() + ": cannot open for reading");
    DigestContext digest;
    std::vector<char> block(1 << 20);
    while (in) {
        in.read(block.data(), static_cast<std::streamsize>(block.size()));
        digest.update(block.data(), static_cast<size_t>(in.gcount()));
    }
    if (in.bad()) throw Error(path.string() + ": read error");
    return digest.hex();
}

std::array<uint64_t, 2> xxh3_128(const void* data, size_t size) {
    const XXH128_hash_t h = XXH3_128bits(data, size);
    return {h.low64, h.high64};
}

Xxh3Stream::Xxh3Stream() : state_(XXH3_createState()) {
    if (!state_) throw Error("out of memory for XXH3 state");
    XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}
Xxh3Stream::~Xxh3Stream() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }
void Xxh3Stream::update(const void* data, size_t size) {
    XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), data, size);
}
uint64_t Xxh3Stream::digest() const { return XXH3_64bits_digest(static_cast<XXH3_state_t*>(state_)); }

}  // namespace cbir
