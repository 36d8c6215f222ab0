#include "index/index_spec.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <regex>

namespace cbir {

std::string index_kind_name(IndexKind kind) {
    switch (kind) {
        case IndexKind::Flat: return "flat";
        case IndexKind::Hnsw: return "hnsw";
        case IndexKind::Ivf: return "ivf";
        case IndexKind::IvfPq: return "ivfpq";
    }
    return "unknown";
}

std::optional<IndexKind> parse_index_kind(const std::string& name) {
    for (IndexKind kind : {IndexKind::Flat, IndexKind::Hnsw, IndexKind::Ivf, IndexKind::IvfPq})
        if (index_kind_name(kind) == name) return kind;
    return std::nullopt;
}

std::string IndexSpec::describe() const {
    const std::string lists = ivf_nlist > 0 ? std::to_string(ivf_nlist) : "auto";
    switch (kind) {
        case IndexKind::Flat: return "Flat";
        case IndexKind::Hnsw: return "HNSW" + std::to_string(hnsw_m);
        case IndexKind::Ivf: return "IVF" + lists + ",Flat";
        case IndexKind::IvfPq:  // 8 bits is FAISS's default and is left out, as its factory strings do
            return "IVF" + lists + ",PQ" + std::to_string(pq_m) + (pq_bits == 8 ? "" : "x" + std::to_string(pq_bits));
    }
    return index_kind_name(kind);
}

IndexSpec IndexParameters::applied_to(IndexSpec spec) const {
    if (hnsw_m) spec.hnsw_m = *hnsw_m;
    if (hnsw_ef_construction) spec.hnsw_ef_construction = *hnsw_ef_construction;
    if (ivf_nlist) spec.ivf_nlist = *ivf_nlist;
    if (pq_m) spec.pq_m = *pq_m;
    if (pq_bits) spec.pq_bits = *pq_bits;
    return spec;
}

bool same_index_build(const IndexSpec& a, const IndexSpec& b) {
    if (a.describe() != b.describe()) return false;
    return a.kind != IndexKind::Hnsw || a.hnsw_ef_construction == b.hnsw_ef_construction;
}

size_t IndexSpec::ivf_training_size(size_t rows) const {
    size_t wanted = static_cast<size_t>(std::max(ivf_nlist, 1)) * 64;
    if (kind == IndexKind::IvfPq) wanted = std::max(wanted, (size_t(1) << pq_bits) * 64);
    return std::min(rows, wanted);
}

std::optional<IndexSpec> parse_index_spec(const std::string& text, const IndexSpec& defaults, std::string* error) {
    IndexSpec spec = defaults;
    std::string lower = text;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    std::smatch m;
    auto fail = [&](const std::string& why) -> std::optional<IndexSpec> {
        if (error) *error = why;
        return std::nullopt;
    };
    if (lower == "flat") {
        spec.kind = IndexKind::Flat;
    } else if (std::regex_match(lower, m, std::regex("hnsw(\\d*)"))) {
        spec.kind = IndexKind::Hnsw;
        if (m[1].length()) spec.hnsw_m = std::stoi(m[1]);
    } else if (lower == "ivf") {
        spec.kind = IndexKind::Ivf;
    } else if (lower == "ivfpq") {
        spec.kind = IndexKind::IvfPq;
    } else if (std::regex_match(lower, m, std::regex("ivf(\\d+|auto),flat"))) {
        spec.kind = IndexKind::Ivf;
        spec.ivf_nlist = m[1] == "auto" ? 0 : std::stoi(m[1]);
    } else if (std::regex_match(lower, m, std::regex("ivf(\\d+|auto),pq(\\d+)(?:x(\\d+))?"))) {
        spec.kind = IndexKind::IvfPq;
        spec.ivf_nlist = m[1] == "auto" ? 0 : std::stoi(m[1]);
        spec.pq_m = std::stoi(m[2]);
        if (m[3].length()) spec.pq_bits = std::stoi(m[3]);
    } else {
        return fail("unknown index '" + text + "': use flat, hnsw, ivf, ivfpq or a factory string such as HNSW32, "
                    "IVF2048,Flat, IVF1024,PQ64");
    }
    if (spec.hnsw_m < 2 || spec.hnsw_m > 256) return fail("HNSW M must be 2..256");
    if (spec.ivf_nlist < 0 || spec.ivf_nlist > (1 << 20)) return fail("IVF nlist must be 1..1048576");
    if (spec.pq_m < 1 || spec.pq_m > 1024) return fail("PQ m must be 1..1024");
    if (spec.pq_bits < 4 || spec.pq_bits > 12) return fail("PQ bits must be 4..12");
    return spec;
}

int choose_ivf_nlist(size_t n) {
    int nlist = 1;
    while (nlist * 2 <= 4.0 * std::sqrt(static_cast<double>(n))) nlist *= 2;
    while (nlist > 1 && n / static_cast<size_t>(nlist) < 39) nlist /= 2;
    return std::min(nlist, 65536);
}

}  // namespace cbir
