#pragma once
// Which model a command runs: the one named with --model, or the one the store was built with, or
// the default fetched model for a new store; and the check that a store is never extended or
// queried with features from a different model.
#include <filesystem>
#include <optional>

#include "embed/model_file.h"
#include "image/preprocess.h"
#include "store/store.h"

namespace cbir {

// Hashes the file; throws cbir::Error if it is missing or unreadable.
ModelFile describe_model(const std::filesystem::path& path);

// For a new store: the requested model, or the default one; throws with the fetch command if none.
ModelFile model_for_new_store(const std::optional<std::filesystem::path>& requested,
                              const std::filesystem::path& executable_dir);

// For an existing store, whose vectors a new one must be comparable with: the store's preprocessing
// must be this cbir's, and the requested model the store's (same sha256); without a request the
// store's recorded model is used, re-hashed unless its size, mtime, change time and inode are as
// recorded. Throws cbir::Error naming the mismatch.
ModelFile model_for_existing_store(Store& store, const std::optional<std::filesystem::path>& requested);

// The settings of a new store built by `model`: its identity (path, sha256, size, mtime), the
// dimension, metric and index, and the preprocessing recipe (exact unless --fast-decode).
StoreSettings new_store_settings(const ModelFile& model, int dimension, Metric metric, const IndexSpec& index,
                                 const PreprocessSpec& preprocessing = PreprocessSpec{});

// How images are prepared for this store: always by the store's recipe, so that its vectors are only
// ever compared with vectors made the same way. Without --fast-decode a store built with it is still
// queried and extended with it; --fast-decode asked of a store built exactly is refused (throws
// cbir::Error), as is a recipe this cbir does not know.
PreprocessSpec preprocessing_for_store(const Store& store, bool fast_decode_asked);
// Without a store (cbir embed, cbir similarity) or for a new one: the exact recipe or --fast-decode's.
inline PreprocessSpec preprocessing_for(bool fast_decode) {
    return fast_decode ? PreprocessSpec::fast_decode() : PreprocessSpec{};
}

// Warns once when the model is the untrained stand-in.
void warn_if_untrained(const ModelFile& model);

}  // namespace cbir
