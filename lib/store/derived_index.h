#pragma once
// The store's ANN index is derived from the catalogue: it is loaded when its header says it was
// built from the catalogue's current generation, and rebuilt from the catalogue's vectors when it is
// stale, missing or damaged. Nothing is lost when the index file is: the catalogue holds every vector.
#include <memory>

#include "index/flat_index.h"
#include "index/index_file.h"
#include "store/store.h"
#include "store/writer_lock.h"

namespace cbir {

// Which catalogue state an index file at `generation` would be, and whether a file built from
// `built_from` can serve this catalogue: Current (the same state), Behind (an earlier state of this
// very catalogue: it catches up), or Foreign (another store, a diverged copy, or a later state).
CatalogueState catalogue_state(Store& store, uint64_t generation);
enum class IndexFileMatch { Current, Behind, Foreign };
IndexFileMatch match_index_file(Store& store, const CatalogueState& built_from, uint64_t generation);
// Why a Foreign file does not belong, in words.
std::string describe_foreign(Store& store, const CatalogueState& built_from);

// Exact search over every vector in the catalogue.
std::unique_ptr<VectorIndex> build_flat_index(Store& store);

// The index a query should search: flat for "flat" stores (and for IVF stores still too small to
// train), else the index file. A file behind the catalogue catches up with the rows changed and
// deleted since it was written (or is rebuilt when that is not possible); with IfChanged the
// result is written back atomically. IVF-PQ results are re-ranked exactly from the catalogue.
// Whether a search writes back an index file it had to bring up to date (only where the store's
// folder is writable: a read-only store searches from memory).
// `holding`: Mapped for a command, Copied for a server (index_file.h says why).
enum class IndexWriteBack { IfChanged, Never };
std::unique_ptr<VectorIndex> open_search_index(Store& store, IndexWriteBack write_back, IndexFileHolding holding);
// An index file is checked as searches read it (index_file.h): when a search finds damage, this
// says so, sets the file aside and returns the index rebuilt from the catalogue (written back as
// open_search_index does).
std::unique_ptr<VectorIndex> reopen_damaged_index(Store& store, const std::string& damage, IndexWriteBack write_back);

// After the catalogue changed: brings the index file up to date, by catching up with the rows
// changed since the file's generation (re-added ids are replaced) or by a rebuild: an IVF index is
// retrained once the collection is ten times what it was trained on, an HNSW graph is compacted once
// a tenth of it is deleted.
void update_index_file(Store& store);
// The same after a commit: a failure to write the file is a warning, not an error, since the commit
// stands and the next query catches the index up.
void refresh_index_file(Store& store);

// Writes an index returned by open_search_index as the store's index file, built from catalogue
// `generation` (a flat index has no file: nothing is written).
void save_index_file(const VectorIndex& index, Store& store, uint64_t generation);

// `cbir reindex`: records the new index choice and rebuilds it from the catalogue, no re-embedding.
void reindex_store(Store& store, const WriterLock& held, const IndexSpec& spec);

}  // namespace cbir
