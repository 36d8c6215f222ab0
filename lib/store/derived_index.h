#pragma once
// The store's ANN index is derived from the catalogue: it is loaded when its header says it was
// built from the catalogue's current generation, and rebuilt from the catalogue's vectors when it is
// stale, missing or damaged. Nothing is lost when the index file is: the catalogue holds every vector.
#include <memory>

#include "index/flat_index.h"
#include "store/store.h"

namespace cbir {

// Exact search over every vector in the catalogue.
std::unique_ptr<FlatIndex> build_flat_index(Store& store);

// The index a query should search: flat for "flat" stores (and for IVF stores still too small to
// train), else the index file, rebuilt (and, when save is true, written back atomically) if it does
// not match the catalogue. IVF-PQ results are re-ranked exactly from the catalogue's vectors.
std::unique_ptr<VectorIndex> open_search_index(Store& store, bool save);

// After the catalogue changed: brings the index file up to date. If the file matched
// generation_before, only rows changed since are added (re-added ids are replaced); otherwise the
// index is rebuilt. An IVF index is retrained once the collection is ten times what it was trained
// on.
void update_index_file(Store& store, uint64_t generation_before);

// `cbir reindex`: records the new index choice and rebuilds it from the catalogue, no re-embedding.
void reindex_store(Store& store, const IndexSpec& spec);

}  // namespace cbir
