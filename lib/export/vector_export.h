#pragma once
// `cbir export`: a store's or a set's rows as NumPy files for the systems users hand off to.
// milvus-npy: Milvus's bulk-insert layout, one folder per part (part-00000/id.npy int64 global ids,
// path.npy NumPy unicode, embedding.npy float32 [N, D]), parts of at most rows_per_part rows filled
// shard by shard, and schema.json describing the collection. npy: one vectors.npy with ids.npy and
// paths.npy beside it, for FAISS/autofaiss.
#include <cstddef>
#include <filesystem>
#include <string>

namespace cbir {

enum class ExportFormat { MilvusNpy, Npy };

struct ExportOptions {
    std::filesystem::path output;  // a folder, created if missing
    ExportFormat format = ExportFormat::MilvusNpy;
    // Milvus reads files of a few million rows reliably; very large ones have failed in practice.
    size_t rows_per_part = 4'000'000;
};

struct ExportSummary {
    size_t rows = 0;
    size_t parts = 0;
    int dimension = 0;
    size_t paths_not_utf8 = 0;  // written with U+FFFD where a byte was not UTF-8
};

// Throws cbir::Error naming the store and the cause (and when the store changed during the export).
ExportSummary export_vectors(const std::filesystem::path& store_or_set, const ExportOptions& options);

}  // namespace cbir
