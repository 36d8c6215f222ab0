#include "serve/http_api.h"

#include <arpa/inet.h>
#include <strings.h>
#include <sys/socket.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "image/thumbnail.h"
#include "search/search_limits.h"
#include "serve/http_server.h"
#include "serve/local_socket.h"
#include "serve/web_page.h"
#include "util/byte_text.h"
#include "util/log.h"

namespace cbir {
namespace {

using json = nlohmann::json;

// Request start times, per worker thread: httplib handles a request start to end on one thread.
thread_local std::chrono::steady_clock::time_point request_started;

// Every answer goes through here: dump_json cannot throw (a path that is not UTF-8 is replaced), so
// no answer after a committed write turns into a 500.
void send_json(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(dump_json(body), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
    send_json(res, status, json{{"error", message}, {"status", status}});
}

// "/images/17/file" -> "GET /images/{id}/file": statistics per route, not per URL.
std::string route_of(const httplib::Request& req) {
    std::string path = req.path;
    if (path.rfind("/images/", 0) == 0) {
        const auto ends_with = [&](const std::string& tail) {
            return path.size() > tail.size() && path.compare(path.size() - tail.size(), tail.size(), tail) == 0;
        };
        path = ends_with("/file") ? "/images/{id}/file" : ends_with("/thumbnail") ? "/images/{id}/thumbnail" : "/images/{id}";
    } else if (path != "/" && path != "/search" && path != "/images" && path != "/stats" && path != "/health") {
        path = "(other)";
    }
    return req.method + " " + path;
}

int to_int(const std::string& text, const char* name) {
    try {
        size_t used = 0;
        const long long value = std::stoll(text, &used);
        if (used != text.size() || value < std::numeric_limits<int>::min() || value > std::numeric_limits<int>::max())
            throw std::invalid_argument(name);
        return static_cast<int>(value);
    } catch (const std::exception&) {
        throw RequestError(400, fmt::format("{} must be an integer, not \"{}\"", name, text));
    }
}

float to_float(const std::string& text, const char* name) {
    try {
        size_t used = 0;
        const float value = std::stof(text, &used);
        if (used != text.size()) throw std::invalid_argument(name);
        return value;
    } catch (const std::exception&) {
        throw RequestError(400, fmt::format("{} must be a number, not \"{}\"", name, text));
    }
}

// A POST body, read by the route itself: httplib would otherwise parse (and cap at 8 KiB) any body sent
// as application/x-www-form-urlencoded, which is what `curl --data-binary @photo.jpg` sends. Its bytes
// are counted as they are read by the connection (HttpServer), whatever the framing: past the limit
// the reading stops, and the route answers 413.
struct Body {
    std::string raw;
    std::vector<httplib::MultipartFormData> parts;
    const httplib::MultipartFormData* part(const std::string& name) const {
        for (const auto& p : parts)
            if (p.name == name) return &p;
        return nullptr;
    }
};

// How a request whose bytes stopped coming before it was whole is answered (nullopt: they did not).
std::optional<std::pair<int, std::string>> read_failure_answer(const ConnectionLimits& limits) {
    switch (HttpServer::read_failure()) {
        case ReadFailure::HeadersTooLarge:
            return std::make_pair(431, fmt::format("request headers larger than {} bytes", limits.max_header_bytes));
        case ReadFailure::BodyTooLarge:
            return std::make_pair(413, fmt::format("the request body is larger than the {} bytes allowed (cbir serve "
                                                   "--max-body-mb)",
                                                   limits.max_body_bytes));
        case ReadFailure::ServerBusy:
            return std::make_pair(503, "the server is holding as many request bodies as it may at once; retry shortly");
        case ReadFailure::TimedOut:
            return std::make_pair(408, fmt::format("the request did not arrive within {} s (headers and body; cbir "
                                                   "serve --request-timeout)",
                                                   limits.request_seconds));
        case ReadFailure::Stopping: return std::make_pair(503, "the server is stopping");
        case ReadFailure::Closed:
        case ReadFailure::None: return std::nullopt;
    }
    return std::nullopt;
}

Body read_body(const httplib::Request& req, const httplib::ContentReader& reader, const ConnectionLimits& limits) {
    const size_t max_bytes = limits.max_body_bytes;
    const std::string length = req.get_header_value("Content-Length");
    if (!length.empty() && std::strtoull(length.c_str(), nullptr, 10) > max_bytes)
        throw RequestError(413, fmt::format("request body of {} bytes is larger than the {} allowed (cbir serve --max-body-mb)",
                                            length, max_bytes));
    Body body;
    bool complete = false;
    if (req.is_multipart_form_data()) {
        complete = reader(
            [&](const httplib::MultipartFormData& header) {
                body.parts.push_back(header);
                return true;
            },
            [&](const char* data, size_t size) {
                body.parts.back().content.append(data, size);
                return true;
            });
    } else {
        complete = reader([&](const char* data, size_t size) {
            body.raw.append(data, size);
            return true;
        });
    }
    if (!complete) {
        if (auto answer = read_failure_answer(limits)) throw RequestError(answer->first, answer->second);
        throw RequestError(400, "the request body could not be read (cut short or malformed)");
    }
    HttpServer::body_read_to_end();
    return body;
}

// What each route takes: a query-string parameter or JSON field it does not know (a misspelt
// `top_k`) is refused with the list, not silently ignored.
// With the expectations a one-shot `cbir query` states (lib/serve/served_query.h): one list, read
// by search_request_from and checked by require_known_parameters.
const std::vector<std::string> kSearchParameters = {"k", "ef", "nprobe", "max_distance", "one_shot", "store_id",
                                                    "generation", "state_token", "model_sha256", "precision",
                                                    "preprocessing"};
const std::vector<std::string> kSearchJsonFields = {"vector", "id", "k", "ef", "nprobe", "max_distance"};
const std::vector<std::string> kPathParameters = {"path", "path_bytes"};
const std::vector<std::string> kRemoveParameters = {"path", "path_bytes", "id"};

std::string listed(const std::vector<std::string>& names) {
    if (names.empty()) return "none";
    std::string out;
    for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
    return out;
}

void require_known_names(const std::string& kind, const std::string& name, const httplib::Request& req,
                         const std::vector<std::string>& known) {
    if (std::find(known.begin(), known.end(), name) == known.end())
        throw RequestError(400, fmt::format("unknown {} \"{}\": {} {} takes {}", kind, name, req.method, req.path,
                                            listed(known)));
}

void require_known_parameters(const httplib::Request& req, const std::vector<std::string>& known) {
    for (const auto& [name, value] : req.params) require_known_names("parameter", name, req, known);
}

void require_known_fields(const httplib::Request& req, const json& body, const std::vector<std::string>& known) {
    for (const auto& [name, value] : body.items()) require_known_names("field", name, req, known);
}

// k, ef, nprobe and max_distance from the query string, then from multipart fields.
SearchRequest search_request_from(const httplib::Request& req, const Body& body) {
    SearchRequest request;
    auto field = [&](const char* name) -> std::optional<std::string> {
        if (req.has_param(name)) return req.get_param_value(name);
        if (const auto* part = body.part(name)) return part->content;
        return std::nullopt;
    };
    if (auto v = field("k")) request.k = to_int(*v, "k");
    if (auto v = field("ef")) request.ef = to_int(*v, "ef");
    if (auto v = field("nprobe")) request.nprobe = to_int(*v, "nprobe");
    if (auto v = field("max_distance")) request.max_distance = to_float(*v, "max_distance");
    // The expectations of a client that must print what `cbir query` would (lib/serve/served_query.h).
    if (auto v = field("one_shot")) request.one_shot = *v == "1";
    if (auto v = field("store_id")) {
        CatalogueState state;
        state.store_id = *v;
        const std::string generation = field("generation").value_or("");
        char* end = nullptr;
        state.generation = std::strtoull(generation.c_str(), &end, 10);
        if (generation.empty() || *end != '\0') throw RequestError(400, "store_id needs generation, an integer");
        state.token = field("state_token").value_or("");
        request.catalogue_state = state;
    }
    if (auto v = field("model_sha256")) request.model_sha256 = *v;
    if (auto v = field("precision")) request.precision = *v;
    if (auto v = field("preprocessing")) request.preprocessing = *v;
    return request;
}

// A parsed JSON value takes up to ~40 times its text (a body of nested brackets: 64 MB became
// 2.7 GB); what the API takes in JSON (a vector of 512 numbers, an id, a path) is a few KB.
constexpr size_t kMaxJsonBodyBytes = 1 << 20;

json parse_json_body(const Body& request_body) {
    if (request_body.raw.size() > kMaxJsonBodyBytes)
        throw RequestError(413, fmt::format("a JSON body of {} bytes is larger than the {} allowed (a vector of 512 "
                                            "numbers is about 10 KB)", request_body.raw.size(), kMaxJsonBodyBytes));
    try {
        json body = json::parse(request_body.raw);
        if (!body.is_object()) throw RequestError(400, "the JSON body must be an object");
        return body;
    } catch (const json::exception& e) {
        throw RequestError(400, std::string("the body is not valid JSON: ") + e.what());
    }
}

int json_int(const json& body, const char* name) {
    const json& value = body.at(name);
    if (!value.is_number_integer() || value.get<long long>() < std::numeric_limits<int>::min() ||
        value.get<long long>() > std::numeric_limits<int>::max())
        throw RequestError(400, fmt::format("\"{}\" must be an integer", name));
    return value.get<int>();
}

// JSON fields override the query string: {"k": 5, "ef": 128, "nprobe": 32, "max_distance": 30}.
void apply_json_fields(const json& body, SearchRequest& request) {
    if (body.contains("k")) request.k = json_int(body, "k");
    if (body.contains("ef")) request.ef = json_int(body, "ef");
    if (body.contains("nprobe")) request.nprobe = json_int(body, "nprobe");
    if (body.contains("max_distance") && !body.at("max_distance").is_null()) {
        if (!body.at("max_distance").is_number()) throw RequestError(400, "\"max_distance\" must be a number");
        request.max_distance = body.at("max_distance").get<float>();
    }
}

bool is_json(const httplib::Request& req) {
    return req.get_header_value("Content-Type").rfind("application/json", 0) == 0;
}

// The image of a request: the multipart field "image" (or the one file sent), else the raw body. One
// image per request: a second one is refused rather than silently dropped.
std::string image_bytes(const Body& body) {
    if (!body.parts.empty()) {
        std::vector<const httplib::MultipartFormData*> images;
        for (const auto& part : body.parts)
            if (part.name == "image" || !part.filename.empty()) images.push_back(&part);
        if (images.size() > 1)
            throw RequestError(400, fmt::format("the request holds {} images (multipart fields \"image\" or files); "
                                                "send one image per request",
                                                images.size()));
        if (images.empty()) throw RequestError(400, "multipart request without an \"image\" file");
        return images.front()->content;
    }
    if (body.raw.empty()) throw RequestError(400, "empty body: send an image, or JSON with \"vector\" or \"id\"");
    return body.raw;
}

// "path", and "path_bytes" (base64) when the file's name is not UTF-8: see set_text_field.
json hit_json(const QueryHit& hit) {
    json out{{"rank", hit.rank},
             {"id", hit.id},
             {"distance", hit.distance},
             {"file", fmt::format("/images/{}/file", hit.id)},
             {"thumbnail", fmt::format("/images/{}/thumbnail", hit.id)}};
    set_text_field(out, "path", hit.path);
    return out;
}

json record_json(const ImageRecord& r, bool with_vector) {
    json out{{"id", r.id},         {"size", r.size},   {"mtime_ns", r.mtime_ns}, {"sha256", r.sha256},
             {"width", r.width},   {"height", r.height}, {"file", fmt::format("/images/{}/file", r.id)}};
    set_text_field(out, "path", r.path);
    if (with_vector) out["vector"] = r.vector;
    return out;
}

json change_json(const AddResult& change, bool with_file) {
    json out{{"id", change.id}, {"status", change.status}};
    set_text_field(out, "path", change.path);
    if (with_file) out["file"] = fmt::format("/images/{}/file", change.id);
    return out;
}

std::string decoded_path_bytes(const std::string& base64) {
    auto bytes = base64_decode(base64);
    if (!bytes) throw RequestError(400, "\"path_bytes\" must be base64 (RFC 4648, padded)");
    return *bytes;
}

// A path named by the client: "path" (text; raw bytes when %-escaped in a URL) or "path_bytes" (the
// exact bytes in base64, as answers give them for names that are not UTF-8), from the JSON body or
// the query string.
std::optional<std::string> requested_path(const httplib::Request& req, const json* body) {
    if (body) {
        if (body->contains("path_bytes")) {
            if (!body->at("path_bytes").is_string()) throw RequestError(400, "\"path_bytes\" must be a base64 string");
            return decoded_path_bytes(body->at("path_bytes").get<std::string>());
        }
        if (body->contains("path")) {
            if (!body->at("path").is_string()) throw RequestError(400, "\"path\" must be a string");
            return body->at("path").get<std::string>();
        }
        return std::nullopt;
    }
    if (req.has_param("path_bytes")) {
        std::string base64 = req.get_param_value("path_bytes");
        std::replace(base64.begin(), base64.end(), ' ', '+');  // a query string's "+" reads as a space
        return decoded_path_bytes(base64);
    }
    if (req.has_param("path")) return req.get_param_value("path");
    return std::nullopt;
}

// A JSON vector: numbers within float32's range (a larger one would become infinity).
std::vector<float> vector_from(const json& value) {
    if (!value.is_array()) throw RequestError(400, "\"vector\" must be an array of numbers");
    std::vector<float> vector;
    vector.reserve(value.size());
    for (const json& component : value) {
        if (!component.is_number()) throw RequestError(400, "\"vector\" must be an array of numbers");
        const double v = component.get<double>();
        if (!std::isfinite(v) || std::fabs(v) > FLT_MAX)
            throw RequestError(400, fmt::format("\"vector\" value {} is outside float32's range", vector.size()));
        vector.push_back(static_cast<float>(v));
    }
    return vector;
}

std::string content_type_of(const std::string& path) {
    std::string ext = std::filesystem::path(path).extension().string();
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext == ".jpg" || ext == ".jpeg" || ext == ".jpe") return "image/jpeg";
    if (ext == ".png") return "image/png";
    if (ext == ".bmp") return "image/bmp";
    if (ext == ".webp") return "image/webp";
    if (ext == ".tif" || ext == ".tiff") return "image/tiff";
    if (ext == ".gif") return "image/gif";
    return "application/octet-stream";
}

bool truthy(const httplib::Request& req, const char* name) {
    if (!req.has_param(name)) return false;
    const std::string v = req.get_param_value(name);
    return v.empty() || v == "1" || v == "true" || v == "yes";
}

int64_t id_from(const std::string& text) {
    try {
        return std::stoll(text);
    } catch (const std::exception&) {
        throw RequestError(404, "no image with id " + text);
    }
}

std::string lowercase(std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

// The name in a Host header or --host value: "[::1]:19121" -> "[::1]", "::1" -> "[::1]",
// "Example.ORG.:80" -> "example.org".
std::string host_name_of(std::string host) {
    if (host.find(':') != host.rfind(':') && host.front() != '[') return "[" + lowercase(host) + "]";  // bare IPv6
    if (!host.empty() && host.front() == '[') {
        const size_t end = host.find(']');
        host = end == std::string::npos ? host : host.substr(0, end + 1);
    } else if (const size_t colon = host.rfind(':'); colon != std::string::npos) {
        host = host.substr(0, colon);
    }
    if (!host.empty() && host.back() == '.') host.pop_back();
    return lowercase(host);
}

bool is_ip_literal(const std::string& name) {
    unsigned char address[16];
    if (name.size() > 2 && name.front() == '[' && name.back() == ']')
        return ::inet_pton(AF_INET6, name.substr(1, name.size() - 2).c_str(), address) == 1;
    return ::inet_pton(AF_INET, name.c_str(), address) == 1;
}

}  // namespace

// Requests are worked on (decoded, embedded, searched, files read) by at most request_threads at a
// time: each connection has a thread of its own, so this bounds the memory and CPU that many
// connections can ask for at once. Taken once the body is in, so that a slow client holds none.
class WorkSlots {
public:
    explicit WorkSlots(int slots) : free_(static_cast<size_t>(std::max(slots, 1))) {}
    void acquire() {
        std::unique_lock<std::mutex> lock(mutex_);
        freed_.wait(lock, [&] { return free_ > 0; });
        --free_;
    }
    void release() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ++free_;
        }
        freed_.notify_one();
    }

private:
    std::mutex mutex_;
    std::condition_variable freed_;
    size_t free_;
};

namespace {

class WorkSlot {
public:
    explicit WorkSlot(WorkSlots& slots) : slots_(slots) { slots_.acquire(); }
    ~WorkSlot() { slots_.release(); }
    WorkSlot(const WorkSlot&) = delete;
    WorkSlot& operator=(const WorkSlot&) = delete;

private:
    WorkSlots& slots_;
};

// Which requests are answered at all, before any of their body is read: refusals close the connection.
std::optional<std::pair<int, std::string>> refusal_of(const httplib::Request& req, const HttpOptions& options) {
    const std::string& method = req.method;
    if (method != "GET" && method != "HEAD" && method != "POST" && method != "DELETE")
        return std::make_pair(405, method + " is not a method of this API (GET, HEAD, POST, DELETE)");
    // Only POST takes a body (read by read_body, within --max-body-mb): for the others it is a body
    // limit of 0. httplib would read one into memory, or (a chunked DELETE) skip it and take its bytes
    // for the next request.
    if (method != "POST" && (req.has_header("Transfer-Encoding") ||
                             std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10) > 0))
        return std::make_pair(413, method + " takes no request body");
    const std::string content_encoding = lowercase(req.get_header_value("Content-Encoding"));
    if (!content_encoding.empty() && content_encoding != "identity")
        // httplib would inflate it: a small gzip body could grow past every limit.
        return std::make_pair(415, "compressed request bodies (Content-Encoding: " + content_encoding + ") are not accepted");
    const std::string transfer_encoding = req.get_header_value("Transfer-Encoding");
    if (!transfer_encoding.empty() && strcasecmp(transfer_encoding.c_str(), "chunked") != 0)
        return std::make_pair(501, "Transfer-Encoding " + transfer_encoding + " is not supported (only chunked)");
    const std::string host = req.get_header_value("Host");
    if (!host_allowed(host, options.host, options.allowed_hosts))
        return std::make_pair(403, fmt::format("Host \"{}\" is not this server's name (cbir serve --allow-host NAME "
                                               "accepts it)",
                                               host));
    if (method != "GET" && method != "HEAD" && !origin_allowed(req.get_header_value("Origin"), host))
        return std::make_pair(403, fmt::format("a page of {} may not send requests to this server",
                                               req.get_header_value("Origin")));
    return std::nullopt;
}

}  // namespace

bool host_allowed(const std::string& host_header, const std::string& listening_host,
                  const std::vector<std::string>& allowed_hosts) {
    if (host_header.empty()) return true;
    const std::string name = host_name_of(host_header);
    if (name == "localhost" || is_ip_literal(name) || name == host_name_of(listening_host)) return true;
    for (const auto& allowed : allowed_hosts)
        if (name == host_name_of(allowed)) return true;
    return false;
}

bool origin_allowed(const std::string& origin_header, const std::string& host_header) {
    return origin_header.empty() || lowercase(origin_header) == "http://" + lowercase(host_header);
}

HttpApi::HttpApi(ServeBackend& service, const HttpOptions& options)
    : service_(service), options_(options), work_slots_(std::make_unique<WorkSlots>(options.request_threads)) {
    ConnectionLimits limits;
    limits.max_connections = static_cast<size_t>(std::max(options.max_connections, 1));
    limits.request_seconds = options.request_timeout_seconds;
    limits.max_body_bytes = options.max_body_bytes;
    // As many maximal bodies as requests worked on at once: the most a fixed pool of request threads held.
    limits.body_memory_bytes = options.max_body_bytes * static_cast<size_t>(std::max(options.request_threads, 1));
    server_ = std::make_unique<HttpServer>(limits);
    if (!options.local_socket_store.empty()) local_server_ = std::make_unique<HttpServer>(limits, server_.get());
    // Without it, Nagle's algorithm holds the body back behind the headers until the client's delayed
    // ACK: every answer took 40 ms more (measured with scripts/bench-serve.sh).
    server_->set_tcp_nodelay(true);
    // httplib's default also sets SO_REUSEPORT, with which a second server binds the same port and
    // the kernel splits connections between the two stores. SO_REUSEADDR alone allows a quick restart.
    server_->set_socket_options([](int socket) {
        const int yes = 1;
        ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    add_routes(*server_, "");
    if (local_server_) add_routes(*local_server_, " (local socket)");
}

HttpApi::~HttpApi() = default;

int HttpApi::bind() {
    const int port = server_->bind(options_.host, options_.port);
    if (port < 0 && options_.port == 0) throw Error(fmt::format("cannot listen on {}: no free port", options_.host));
    if (port < 0)
        throw Error(fmt::format("cannot listen on {}:{} (in use, or not an address of this machine)", options_.host,
                                options_.port));
    if (local_server_) {
        try {
            local_listener_ = LocalSocketListener::create(options_.local_socket_store);
            local_server_->adopt_local_socket(local_listener_->take_descriptor());
            log_debug(fmt::format("one-shot queries of cbir query come through {}", local_listener_->path().string()));
        } catch (const Error& e) {
            log_warning(fmt::format("{}; cbir query will load the model itself", e.what()));
            local_server_.reset();
        }
    }
    return port;
}

std::filesystem::path HttpApi::local_socket() const {
    return local_server_ && local_listener_ ? local_listener_->path() : std::filesystem::path();
}

void HttpApi::run() {
    std::thread local;
    if (local_server_ && local_listener_) local = std::thread([this] { local_server_->run(); });
    server_->run();
    if (local.joinable()) {
        local_server_->stop();
        local.join();
    }
    if (local_listener_) local_listener_->remove();
}

void HttpApi::stop() {
    // The socket goes first: a query that starts now loads the model itself instead of waiting on a
    // server that is stopping.
    if (local_listener_) local_listener_->remove();
    if (local_server_) local_server_->stop();
    server_->stop();
}

void HttpApi::add_routes(HttpServer& server, const std::string& via) {
    add_request_handlers(server, via);
    add_status_routes(server);
    add_search_route(server);
    add_insert_route(server);
    add_image_routes(server);
    add_remove_routes(server);
}

void HttpApi::add_request_handlers(HttpServer& server, const std::string& via) {
    httplib::Server& s = server;
    s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        request_started = std::chrono::steady_clock::now();
        if (auto refusal = refusal_of(req, options_)) {
            send_error(res, refusal->first, refusal->second);
            if (refusal->first == 405) res.set_header("Allow", "GET, HEAD, POST, DELETE");
            return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });
    s.set_logger([this, via](const httplib::Request& req, const httplib::Response& res) {
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - request_started).count();
        stats_.record(route_of(req) + via, res.status, ms);
        log_debug(fmt::format("{} {}{} {} {:.1f} ms", req.method, req.path, via, res.status, ms));
    });
    // Every failure answers JSON: {"error": "...", "status": N}.
    s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        try {
            std::rethrow_exception(ep);
        } catch (const RequestError& e) {
            send_error(res, e.status(), e.what());
        } catch (const std::exception& e) {
            log_warning(fmt::format("request failed: {}", e.what()));
            send_error(res, 500, e.what());
        } catch (...) {
            send_error(res, 500, "unknown error");
        }
    });
    s.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (HttpServer::body_unread()) {  // what is left of it cannot be told from a next request
            res.set_header("Connection", "close");
            HttpServer::close_after_response();
        }
        if (!res.body.empty()) return;  // already a JSON error
        // The headers, or a body httplib read itself (a route without a body reader), stopped coming.
        if (auto answer = read_failure_answer(server_->limits())) return send_error(res, answer->first, answer->second);
        if (res.status == 404) send_error(res, 404, "no such route: " + req.method + " " + req.path);
        else if (res.status == 413) send_error(res, 413, "request body too large (see cbir serve --max-body-mb)");
        else send_error(res, res.status, fmt::format("HTTP {}", res.status));
    });
}

void HttpApi::add_status_routes(HttpServer& server) {
    httplib::Server& s = server;
    s.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_content(kWebPage, "text/html; charset=utf-8"); });

    s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
        if (service_.store_in_place())
            send_json(res, 200, json{{"status", "ok"}});
        else
            send_error(res, 503, "the store was removed or replaced while being served (restart cbir serve)");
    });

    s.Get("/stats", [this](const httplib::Request&, httplib::Response& res) {
        const ServiceStatus st = service_.status();
        json routes = json::object();
        for (const RouteStats& r : stats_.snapshot())
            routes[r.route] = json{{"count", r.requests}, {"errors", r.errors}, {"p50_ms", r.p50_ms},
                                   {"p99_ms", r.p99_ms}, {"max_ms", r.max_ms}};
        json roots = json::array();
        for (const auto& root : st.roots) roots.push_back(root.string());
        const ConnectionCounts connections = server_->connection_counts();
        json body{{"store", st.store_dir.string()},
                  {"roots", roots},
                  {"images", st.images},
                  {"indexed", st.indexed},
                  {"index", {{"searched", st.index_kind}, {"spec", st.index_spec}, {"saved_generation", st.saved_generation}}},
                  {"generation", st.generation},
                  {"metric", metric_name(st.metric)},
                  {"dimension", st.dimension},
                  {"model", {{"path", st.model.path.string()}, {"sha256", st.model.sha256}, {"untrained", st.model.untrained}}},
                  {"embedding", {{"images", st.images_embedded}, {"batches", st.inference_batches}}},
                  {"connections", {{"open", connections.open}, {"limit", server_->limits().max_connections},
                                   {"refused", connections.refused}, {"evicted", connections.evicted},
                                   {"body_bytes", connections.body_bytes}}},
                  {"local_socket", local_socket().empty() ? json(nullptr) : json(local_socket().string())},
                  {"search", {{"k", SearchRequest{}.k}, {"k_max", kTopKBounds.max}}},
                  {"uptime_seconds", stats_.uptime_seconds()},
                  {"requests", routes}};
        if (st.shards > 0) body["set"] = {{"shards", st.shards}, {"ranks", st.ranks}};
        send_json(res, 200, body);
    });
}

void HttpApi::add_search_route(HttpServer& server) {
    server.Post("/search", [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
        require_known_parameters(req, kSearchParameters);
        const Body request_body = read_body(req, reader, server_->limits());
        const WorkSlot slot(*work_slots_);
        SearchRequest request = search_request_from(req, request_body);
        SearchAnswer answer;
        if (is_json(req)) {
            const json body = parse_json_body(request_body);
            require_known_fields(req, body, kSearchJsonFields);
            apply_json_fields(body, request);
            if (body.contains("vector")) {
                answer = service_.search_vector(vector_from(body.at("vector")), request);
            } else if (body.contains("id")) {
                if (!body.at("id").is_number_integer()) throw RequestError(400, "\"id\" must be an integer");
                answer = service_.search_id(body.at("id").get<int64_t>(), request);
            } else {
                throw RequestError(400, "JSON search needs \"vector\" or \"id\" (or send the image itself)");
            }
        } else {
            answer = service_.search_image(image_bytes(request_body), request);
        }
        json results = json::array();
        for (const auto& hit : answer.hits) results.push_back(hit_json(hit));
        send_json(res, 200,
                  json{{"query", answer.query_kind},
                       {"metric", metric_name(answer.metric)},
                       {"index", answer.index_kind},
                       {"k", request.k},
                       {"results", results},
                       {"timing_ms", {{"embed", answer.embed_ms}, {"search", answer.search_ms}}}});
    });
}

void HttpApi::add_insert_route(HttpServer& server) {
    server.Post("/images", [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
        require_known_parameters(req, kPathParameters);
        const Body request_body = read_body(req, reader, server_->limits());
        const WorkSlot slot(*work_slots_);
        AddResult added;
        if (is_json(req)) {
            const json body = parse_json_body(request_body);
            require_known_fields(req, body, kPathParameters);
            const auto path = requested_path(req, &body);
            if (!path)
                throw RequestError(400, "JSON needs \"path\" (or \"path_bytes\"): a file under a served root (or upload "
                                        "the image itself)");
            added = service_.add_path(*path);
        } else if (const auto path = requested_path(req, nullptr)) {
            added = service_.add_path(*path);
        } else {
            added = service_.add_upload(image_bytes(request_body));
        }
        send_json(res, added.status == "added" ? 201 : 200, change_json(added, true));
    });
}

void HttpApi::add_image_routes(HttpServer& server) {
    httplib::Server& s = server;
    s.Get(R"(/images/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
        require_known_parameters(req, {"vector"});
        auto record = service_.image(id_from(req.matches[1]));
        if (!record) throw RequestError(404, "no image with id " + std::string(req.matches[1]));
        send_json(res, 200, record_json(*record, truthy(req, "vector")));
    });

    // Files are only ever named by catalogue id, and served only when they are still what the
    // catalogue says (ServeBackend::image_file).
    s.Get(R"(/images/(\d+)/file)", [this](const httplib::Request& req, httplib::Response& res) {
        require_known_parameters(req, {});
        const WorkSlot slot(*work_slots_);
        const CataloguedFile file = service_.image_file(id_from(req.matches[1]));
        // The bytes stay in memory until the client has taken them, after the work slot is given back.
        if (!HttpServer::hold_response_bytes(file.bytes.size()))
            throw RequestError(503, "the server is holding as many files and bodies as it may at once; retry shortly");
        res.set_header("Cache-Control", "private, max-age=60");
        res.set_content(file.bytes, content_type_of(file.record.path).c_str());
    });

    // A JPEG of at most `size` pixels (default 256) on the longer side, for result grids.
    s.Get(R"(/images/(\d+)/thumbnail)", [this](const httplib::Request& req, httplib::Response& res) {
        require_known_parameters(req, {"size"});
        const int size = req.has_param("size") ? to_int(req.get_param_value("size"), "size") : 256;
        if (size < 16 || size > 2048) throw RequestError(400, "size must be between 16 and 2048");
        const WorkSlot slot(*work_slots_);
        const CataloguedFile file = service_.image_file(id_from(req.matches[1]));
        Thumbnail thumbnail = make_thumbnail(file.bytes, size);
        if (!thumbnail.error.empty()) throw RequestError(422, file.record.path + ": " + thumbnail.error);
        res.set_header("Cache-Control", "private, max-age=60");
        res.set_content(thumbnail.jpeg, "image/jpeg");
    });
}

void HttpApi::add_remove_routes(HttpServer& server) {
    httplib::Server& s = server;
    auto remove = [this](const httplib::Request& req, httplib::Response& res) {
        require_known_parameters(req, req.matches.size() > 1 ? std::vector<std::string>{} : kRemoveParameters);
        const WorkSlot slot(*work_slots_);
        AddResult removed;
        if (req.matches.size() > 1) {
            const std::string target = req.matches[1];
            const bool numeric = !target.empty() && target.find_first_not_of("0123456789") == std::string::npos;
            removed = numeric ? service_.remove_id(id_from(target)) : service_.remove_path(target);
        } else if (const auto path = requested_path(req, nullptr)) {
            removed = service_.remove_path(*path);
        } else if (req.has_param("id")) {
            removed = service_.remove_id(id_from(req.get_param_value("id")));
        } else {
            throw RequestError(400, "DELETE /images/{id}, /images/{path}, /images?path=... or /images?path_bytes=...");
        }
        send_json(res, 200, change_json(removed, false));
    };
    s.Delete(R"(/images/(.+))", remove);
    s.Delete("/images", remove);
}

}  // namespace cbir
