#include "pipeline/model_resolution.h"

#include <fmt/format.h>

#include "image/preprocess.h"
#include "util/error.h"
#include "util/file_stat.h"
#include "util/hash.h"
#include "util/log.h"

namespace cbir {

ModelFile describe_model(const std::filesystem::path& path) {
    if (!std::filesystem::is_regular_file(path)) throw Error(path.string() + ": model file not found");
    ModelFile model;
    model.path = std::filesystem::absolute(path).lexically_normal();
    model.sha256 = sha256_file_hex(model.path);
    model.untrained = looks_untrained(model.path, model.sha256);
    return model;
}

ModelFile model_for_new_store(const std::optional<std::filesystem::path>& requested,
                              const std::filesystem::path& executable_dir) {
    if (requested) return describe_model(*requested);
    auto found = find_default_model(executable_dir);
    if (!found)
        throw Error("no model found (looked for models/resnet18-imagenet-features.pt and "
                    "models/resnet18-untrained-features.pt); run ./scripts/fetch-assets.sh or pass --model FILE.pt");
    return describe_model(*found);
}

PreprocessSpec preprocessing_for_store(const Store& store, bool fast_decode_asked) {
    const StoreSettings& s = store.settings();
    const auto spec = PreprocessSpec::from_name(s.preprocessing);
    if (!spec)
        throw Error(fmt::format("{}: the store was built with preprocessing '{}', this cbir uses '{}' or '{}'",
                                store.dir().string(), s.preprocessing, PreprocessSpec{}.name(),
                                PreprocessSpec::fast_decode().name()));
    if (fast_decode_asked && spec->fast_decode_min_side == 0)
        throw Error(fmt::format("{}: the store was built without --fast-decode; its images were decoded at full size, "
                                "and so must the images compared with them (leave out --fast-decode, or build a new "
                                "--store with it)",
                                store.dir().string()));
    return *spec;
}

ModelFile model_for_existing_store(Store& store, const std::optional<std::filesystem::path>& requested) {
    const StoreSettings& s = store.settings();
    // Vectors are comparable only when made the same way: the same model and the same preprocessing.
    preprocessing_for_store(store, /*fast_decode_asked=*/false);
    const std::filesystem::path path = requested ? *requested : std::filesystem::path(s.model_path);
    if (!requested) {
        auto st = stat_file(path);
        if (!st)
            throw Error(fmt::format("{}: the model this store was built with is missing; pass --model with the same "
                                    "model (sha256 {}) or build a new store",
                                    path.string(), s.model_sha256));
        const FileStat recorded{s.model_size, s.model_mtime_ns, s.model_ctime_ns, s.model_inode};
        if (st->same_file_as(recorded)) {
            ModelFile model{path, s.model_sha256, looks_untrained(path, s.model_sha256)};
            return model;
        }
    }
    ModelFile model = describe_model(path);
    if (model.sha256 != s.model_sha256)
        throw Error(fmt::format("{}: model mismatch: the store {} was built with sha256 {} ({}), this model is {}; "
                                "use the store's model or a new --store",
                                model.path.string(), store.dir().string(), s.model_sha256, s.model_path, model.sha256));
    if (auto st = stat_file(model.path)) {
        try {
            store.update_model_identity(model.path.string(), *st);
        } catch (const Error&) {
            // A read-only store still works; it just hashes the model again next time.
        }
    }
    return model;
}

StoreSettings new_store_settings(const ModelFile& model, int dimension, Metric metric, const IndexSpec& index,
                                 const PreprocessSpec& preprocessing) {
    StoreSettings settings;
    settings.model_path = model.path.string();
    settings.model_sha256 = model.sha256;
    if (auto st = stat_file(model.path)) {
        settings.model_size = st->size;
        settings.model_mtime_ns = st->mtime_ns;
        settings.model_ctime_ns = st->ctime_ns;
        settings.model_inode = st->inode;
    }
    settings.dimension = dimension;
    settings.metric = metric;
    settings.preprocessing = preprocessing.name();
    settings.index = index;
    return settings;
}

void warn_if_untrained(const ModelFile& model) {
    static bool noted = false;  // once per process, however many stores (shards) it fills
    if (model.untrained && !noted && (noted = true))
        // A note, not a warning: it holds for every command on such a store, so one short line, and
        // -q silences it.
        log_notice(fmt::format("{}: the untrained stand-in model; neighbours are not semantically meaningful "
                               "(README: Models)",
                               model.path.filename().string()));
}

}  // namespace cbir
