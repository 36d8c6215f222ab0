// `cbir reindex`: rebuild the store's derived index from the catalogue, optionally of another kind.
#include <chrono>
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "cli_common.h"
#include "shard/store_set.h"
#include "options.h"
#include "more_commands.h"
#include "store/derived_index.h"
#include "store/writer_lock.h"
#include "util/words.h"

namespace cbir::cli {
namespace {

struct ReindexFlags {
    std::string store;
    std::string index;
    int hnsw_m = IndexSpec{}.hnsw_m;
    int ef_construction = IndexSpec{}.hnsw_ef_construction;
    int nlist = 0;
    int pq_m = IndexSpec{}.pq_m;
    int pq_bits = IndexSpec{}.pq_bits;
    Verbosity verbosity;
};

int run(const ReindexFlags& flags) {
    apply_verbosity(flags.verbosity);
    const auto dir = resolve_store(flags.store, /*for_writing=*/true);
    const auto started = std::chrono::steady_clock::now();
    // A set: every shard, then the manifest (a new shard is then made with the new index too).
    std::optional<StoreSet> set;
    std::vector<std::filesystem::path> stores{dir};
    if (StoreSet::exists(dir)) {
        set = StoreSet::open(dir);
        stores.clear();
        for (int shard = 0; shard < set->shards(); ++shard)
            if (Store::exists(set->shard_dir(shard))) stores.push_back(set->shard_dir(shard));
    }
    size_t vectors = 0;
    IndexSpec spec;
    for (const auto& store_dir : stores) {
        WriterLock lock(store_dir);
        auto store = Store::open(store_dir);
        const IndexSpec current = set ? set->manifest().index : store->settings().index;
        spec = flags.index.empty() ? current
                                   : parse_index_flags(flags.index, flags.hnsw_m, flags.ef_construction, flags.nlist,
                                                       flags.pq_m, flags.pq_bits);
        reindex_store(*store, lock, spec);
        vectors += store->catalogue().count();
    }
    if (set) set->update_index(spec);
    if (!flags.verbosity.quiet)
        std::fprintf(stderr, "%s\n",
                     fmt::format("cbir: reindexed {} as {} in {:.1f} s", counted(vectors, "vector"),
                                 spec.describe(),
                                 std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count())
                         .c_str());
    return kOk;
}

}  // namespace

std::function<int()> add_reindex_command(CLI::App& app) {
    auto flags = std::make_shared<ReindexFlags>();
    add_store_flag(app, flags->store);
    app.add_option("--index", flags->index,
                   "New index: flat, hnsw, hnswsq8, ivf, ivfpq, or a factory string (HNSW32, HNSW32,SQ8, IVF2048,Flat, "
                   "IVF1024,PQ64); "
                   "default: rebuild the current one")
        ->check(index_spec_validator());
    add_hnsw_options(app, flags->hnsw_m, flags->ef_construction);
    add_ivf_flags(app, flags->nlist, flags->pq_m, flags->pq_bits);
    add_verbosity_flags(app, flags->verbosity);
    return guarded_command([flags] { return run(*flags); });
}

}  // namespace cbir::cli
