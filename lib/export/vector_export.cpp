#include "export/vector_export.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "output/npy_writer.h"
#include "shard/store_set.h"
#include "store/store.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace cbir {
namespace {

struct Source {
    int shard = 0;
    std::filesystem::path dir;
};

// Decodes UTF-8 into code points; each byte that does not start a valid sequence becomes U+FFFD.
std::u32string to_utf32(const std::string& s, bool& replaced) {
    std::u32string out;
    for (size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        int length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        char32_t cp = length == 1 ? c : length == 2 ? (c & 0x1F) : length == 3 ? (c & 0x0F) : (c & 0x07);
        bool ok = length > 0 && i + length <= s.size();
        for (int k = 1; ok && k < length; ++k) {
            const unsigned char cc = static_cast<unsigned char>(s[i + k]);
            ok = (cc >> 6) == 0x2;
            cp = (cp << 6) | (cc & 0x3F);
        }
        // Overlong forms, surrogates and values past U+10FFFF are not UTF-8 either.
        static const char32_t minimum[] = {0, 0, 0x80, 0x800, 0x10000};
        if (ok && (cp < minimum[length] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)) ok = false;
        if (!ok) {
            out += U'\uFFFD';
            replaced = true;
            ++i;
            continue;
        }
        out += cp;
        i += static_cast<size_t>(length);
    }
    return out;
}

// One part: rows [begin, end) of a shard, ids and paths in id order.
struct Part {
    Source source;
    std::vector<int64_t> ids;  // catalogue row ids
    std::vector<std::string> paths;
};

void write_ids(const std::filesystem::path& file, const std::vector<Part>& parts) {
    size_t rows = 0;
    for (const auto& p : parts) rows += p.ids.size();
    NpyStreamWriter out(file, "<i8", {rows}, sizeof(int64_t));
    for (const auto& p : parts)
        for (int64_t id : p.ids) {
            const int64_t global = global_id(p.source.shard, id);
            out.append(&global, sizeof global);
        }
    out.commit();
}

// NumPy unicode: fixed-width UTF-32LE, as wide as the longest path.
size_t write_paths(const std::filesystem::path& file, const std::vector<Part>& parts, ExportSummary& summary,
                   size_t& widest_utf8) {
    std::vector<std::u32string> decoded;
    size_t width = 1;
    for (const auto& p : parts)
        for (const auto& path : p.paths) {
            bool replaced = false;
            decoded.push_back(to_utf32(path, replaced));
            if (replaced) ++summary.paths_not_utf8;
            width = std::max(width, decoded.back().size());
            widest_utf8 = std::max(widest_utf8, path.size() + (replaced ? 2 * path.size() : 0));
        }
    NpyStreamWriter out(file, "<U" + std::to_string(width), {decoded.size()}, width * sizeof(char32_t));
    std::u32string row;
    for (const auto& d : decoded) {
        row = d;
        row.resize(width, U'\0');
        out.append(row.data(), width * sizeof(char32_t));
    }
    out.commit();
    return decoded.size();
}

void write_vectors(const std::filesystem::path& file, const std::vector<Part>& parts, int dimension) {
    size_t rows = 0;
    for (const auto& p : parts) rows += p.ids.size();
    NpyStreamWriter out(file, "<f4", {rows, static_cast<size_t>(dimension)}, sizeof(float));
    for (const auto& p : parts) {
        auto store = Store::open(p.source.dir, CatalogueAccess::ReadOnly);
        std::vector<float> vectors;
        // In slices, so a part of millions of rows never sits in memory at once.
        constexpr size_t kSlice = 4096;
        for (size_t begin = 0; begin < p.ids.size(); begin += kSlice) {
            const std::vector<int64_t> slice(p.ids.begin() + static_cast<long>(begin),
                                             p.ids.begin() + static_cast<long>(std::min(p.ids.size(), begin + kSlice)));
            store->catalogue().vectors_of(slice, dimension, vectors);
            for (float v : vectors)
                if (v != v)
                    throw Error(fmt::format("{}: a row changed during the export (removed or re-embedded); export again "
                                            "when nothing writes to the store",
                                            p.source.dir.string()));
            out.append(vectors.data(), vectors.size() * sizeof(float));
        }
    }
    out.commit();
}

}  // namespace

ExportSummary export_vectors(const std::filesystem::path& store_or_set, const ExportOptions& options) {
    std::vector<Source> sources;
    Metric metric;
    int dimension = 0;
    if (StoreSet::exists(store_or_set)) {
        const StoreSet set = StoreSet::open(store_or_set);
        metric = set.manifest().metric;
        for (int shard = 0; shard < set.shards(); ++shard) {
            if (!Store::exists(set.shard_dir(shard)))
                throw Error(fmt::format("{}: shard {} has no store (run its index task: --shard {})",
                                        set.shard_dir(shard).string(), shard, shard));
            sources.push_back({shard, set.shard_dir(shard)});
        }
    } else {
        sources.push_back({0, store_or_set});
        metric = Store::open(store_or_set, CatalogueAccess::ReadOnly)->settings().metric;
    }
    if (options.rows_per_part < 1) throw Error("rows per part must be at least 1");

    // Rows in (shard, id) order, cut into parts that never span two shards.
    std::vector<Part> parts;
    for (const auto& source : sources) {
        auto store = Store::open(source.dir, CatalogueAccess::ReadOnly);
        if (dimension == 0) dimension = store->settings().dimension;
        if (store->settings().dimension != dimension)
            throw Error(fmt::format("{}: holds {}-d vectors, the other shards {}-d", source.dir.string(),
                                    store->settings().dimension, dimension));
        auto rows = store->catalogue().all_paths();
        std::sort(rows.begin(), rows.end());
        for (size_t begin = 0; begin < rows.size(); begin += options.rows_per_part) {
            Part part{source, {}, {}};
            for (size_t i = begin; i < std::min(rows.size(), begin + options.rows_per_part); ++i) {
                part.ids.push_back(rows[i].first);
                part.paths.push_back(rows[i].second);
            }
            parts.push_back(std::move(part));
        }
    }

    ExportSummary summary;
    summary.dimension = dimension;
    std::error_code ec;
    // The output is a folder of files: a name like out.npy or out.json was meant as one file.
    if (const auto ext = options.output.extension().string(); ext == ".npy" || ext == ".json" || ext == ".npz")
        throw Error(fmt::format("{}: export writes a folder of files (vectors.npy, ids.npy, paths.npy or Milvus parts), "
                                "not one {} file: name a folder, e.g. -o {}",
                                options.output.string(), ext, (options.output.parent_path() / options.output.stem()).string()));
    // Parts left by an earlier export would be imported beside this one's.
    if (std::filesystem::is_directory(options.output, ec) && !std::filesystem::is_empty(options.output, ec))
        throw Error(fmt::format("{}: not empty; export writes into a new or empty folder", options.output.string()));
    std::filesystem::create_directories(options.output, ec);
    if (ec) throw Error(fmt::format("{}: cannot create: {}", options.output.string(), ec.message()));
    size_t widest_utf8 = 1;
    if (options.format == ExportFormat::Npy) {
        write_vectors(options.output / "vectors.npy", parts, dimension);
        write_ids(options.output / "ids.npy", parts);
        summary.rows = write_paths(options.output / "paths.npy", parts, summary, widest_utf8);
        summary.parts = 1;
        return summary;
    }
    nlohmann::json part_names = nlohmann::json::array();
    for (size_t i = 0; i < parts.size(); ++i) {
        const std::string name = fmt::format("part-{:05d}", i);
        const auto folder = options.output / name;
        std::filesystem::create_directories(folder, ec);
        if (ec) throw Error(fmt::format("{}: cannot create: {}", folder.string(), ec.message()));
        const std::vector<Part> one{parts[i]};
        write_vectors(folder / "embedding.npy", one, dimension);
        write_ids(folder / "id.npy", one);
        summary.rows += write_paths(folder / "path.npy", one, summary, widest_utf8);
        part_names.push_back({{"folder", name}, {"shard", parts[i].source.shard}, {"rows", parts[i].ids.size()},
                              {"files", {name + "/id.npy", name + "/path.npy", name + "/embedding.npy"}}});
    }
    summary.parts = parts.size();
    const char* milvus_metric = metric == Metric::L2 ? "L2" : metric == Metric::Cosine ? "COSINE" : "IP";
    nlohmann::json schema = {
        {"format", "milvus-bulk-insert-numpy"},
        {"fields",
         {{{"name", "id"}, {"type", "INT64"}, {"is_primary", true}, {"auto_id", false}},
          {{"name", "path"}, {"type", "VARCHAR"}, {"max_length", std::min<size_t>(65535, std::max<size_t>(widest_utf8, 4096))}},
          {{"name", "embedding"}, {"type", "FLOAT_VECTOR"}, {"dim", dimension}}}},
        {"metric_type", milvus_metric},
        {"id_rule", "shard << 48 | catalogue row id"},
        {"rows", summary.rows},
        {"parts", part_names},
    };
    std::string text = schema.dump(2) + "\n";
    AtomicFileWriter out(options.output / "schema.json");
    out.write(text.data(), text.size());
    out.commit();
    return summary;
}

}  // namespace cbir
