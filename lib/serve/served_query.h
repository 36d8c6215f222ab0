#pragma once
// `cbir query` through a `cbir serve` that holds the same store: the one-shot query of a new image
// without loading LibTorch (0.4 s of static initialisers) or the index. The server is asked over its
// local socket (lib/serve/local_socket.h) with the HTTP API's POST /search, one request per query
// image: the image's bytes (read here by the same reader as a local query, within the same caps),
// or, for an image that is indexed and unchanged, its catalogue id (as a local query uses its stored
// vector). Each request states what the answer must be to equal the local one (see
// SearchRequest): the catalogue state this client reads (store id, generation, token) as the index
// the server searches and has saved, this model's sha256, precision and preprocessing recipe, and
// the model run unoptimised as a one-shot query runs it. A server that differs answers 409.
#include <filesystem>
#include <optional>
#include <vector>

#include "search/searcher.h"

namespace cbir {

// Seconds a server may take to answer one query before the client searches itself.
inline constexpr double kServerAnswerSeconds = 3.0;

// The report run_query would make, from the server; nullopt (with the reason as a debug log line)
// when the query is to be run locally: no server, a stale socket or one not to be trusted, a busy
// server, another catalogue state, model, precision or recipe, an exact search, more than
// kOneShotQueries images, or an image the client or the server cannot read (run_query then reports
// it in its own words). Never throws.
std::optional<QueryReport> query_through_server(const std::vector<std::filesystem::path>& images,
                                                const QueryOptions& options);

}  // namespace cbir
