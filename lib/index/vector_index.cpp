#include "index/vector_index.h"

#include "index/index_file.h"

namespace cbir {

void VectorIndex::write_payload(PayloadFile&, IndexFileHeader&) const {
    throw Error("a " + index_kind_name(kind()) + " index has no index file");
}

void VectorIndex::save(const std::filesystem::path&, const CatalogueState&) const {
    throw Error("a " + index_kind_name(kind()) + " index is not saved alone; it is saved grouped (grouped_index.h)");
}

}  // namespace cbir
