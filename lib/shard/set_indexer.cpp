#include "shard/set_indexer.h"

#include <mutex>
#include <set>

#include <fmt/format.h>

#include "pipeline/model_resolution.h"
#include "store/file_identity.h"
#include "util/cancel.h"
#include "util/error.h"

namespace cbir {

std::filesystem::path common_root(const std::vector<std::filesystem::path>& inputs) {
    std::filesystem::path root;
    bool first = true;
    for (const auto& input : inputs) {
        std::error_code ec;
        std::filesystem::path folder = catalogue_key(input);
        if (!std::filesystem::is_directory(folder, ec)) folder = folder.parent_path();
        if (first) {
            root = folder;
            first = false;
            continue;
        }
        std::filesystem::path shared;
        for (auto a = root.begin(), b = folder.begin(); a != root.end() && b != folder.end() && *a == *b; ++a, ++b)
            shared /= *a;
        root = shared;
    }
    return root.empty() ? std::filesystem::path("/") : root;
}

StoreSet open_or_create_set(const std::vector<std::filesystem::path>& inputs, const SetIndexOptions& options) {
    const auto& dir = options.store.store_dir;
    if (StoreSet::exists(dir)) {
        StoreSet set = StoreSet::open(dir);
        if (options.shards != 0 && options.shards != set.shards())
            throw Error(fmt::format("{}: the set has {} shards; their number is fixed when the set is made (--shards {})",
                                    dir.string(), set.shards(), set.shards()));
        return set;
    }
    if (options.shards == 0)
        throw Error(fmt::format("{}: not a store set; make one with --shards S", dir.string()));
    SetManifest wanted;
    wanted.shards = options.shards;
    wanted.root = common_root(inputs).string();
    const ModelFile model = model_for_new_store(options.store.model, options.store.executable_dir);
    wanted.model_path = model.path.string();
    wanted.model_sha256 = model.sha256;
    wanted.metric = options.store.metric.value_or(Metric::L2);
    wanted.index = options.store.index.value_or(IndexSpec{});
    return StoreSet::create_or_join(dir, wanted);
}

IndexSummary index_store_set(const std::vector<std::filesystem::path>& inputs, const SetIndexOptions& options,
                             const IndexCallbacks& callbacks) {
    const StoreSet set = open_or_create_set(inputs, options);
    std::vector<int> fill = options.fill;
    if (fill.empty())
        for (int s = 0; s < set.shards(); ++s) fill.push_back(s);
    for (int s : fill)
        if (s < 0 || s >= set.shards())
            throw Error(fmt::format("{}: shard {} does not exist (the set has shards 0–{})", set.dir().string(), s,
                                    set.shards() - 1));

    // One model for every shard this process fills.
    std::shared_ptr<Embedder> loaded;
    std::string loaded_path;
    auto load_model = [&](const std::filesystem::path& model, const std::function<std::unique_ptr<Embedder>()>& load) {
        if (!loaded || loaded_path != model.string()) {
            loaded = std::shared_ptr<Embedder>(load());
            loaded_path = model.string();
        }
        return loaded;
    };
    // Every shard walks the same inputs: a problem with an input is reported once.
    std::set<std::string> reported;
    IndexCallbacks shard_callbacks = callbacks;
    shard_callbacks.on_failure = [&](const std::filesystem::path& path, const std::string& reason) {
        if (reported.insert(path.string() + '\n' + reason).second && callbacks.on_failure) callbacks.on_failure(path, reason);
    };

    // A new shard records the model it is made with: it must be the set's. (An existing shard
    // checks its own record.)
    const ModelFile model = describe_model(options.store.model.value_or(set.manifest().model_path));
    if (model.sha256 != set.manifest().model_sha256)
        throw Error(fmt::format("{}: model mismatch: the set {} was made with sha256 {}, this model is {}",
                                model.path.string(), set.dir().string(), set.manifest().model_sha256, model.sha256));

    IndexSummary total;
    for (int shard : fill) {
        if (stop_requested()) {
            total.interrupted = true;
            break;
        }
        IndexOptions shard_options = options.store;
        shard_options.store_dir = set.shard_dir(shard);
        shard_options.model = model.path;
        shard_options.metric = set.manifest().metric;
        shard_options.index = set.manifest().index;
        shard_options.owns = [&set, shard](const std::string& key) { return set.shard_of(key) == shard; };
        shard_options.load_model = load_model;
        total += run_index(inputs, shard_options, shard_callbacks);
    }
    total.failed = reported.size();
    return total;
}

}  // namespace cbir
