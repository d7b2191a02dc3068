// SPDX-License-Identifier: Apache-2.0
#include "split/journal.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "common/json_writer.h"
#include "format/manifest.h"

namespace rabbit {

const JournalUnit* SplitJournal::find(const std::string& unit) const {
    for (const auto& u : done)
        if (u.unit == unit) return &u;
    return nullptr;
}

std::string SplitJournal::to_json() const {
    JsonWriter w;
    w.begin_object();
    w.member("fingerprint", fingerprint);
    w.key("done").begin_array();
    for (const auto& u : done)
        w.begin_object().member("unit", u.unit).member("file", u.file).member("size", u.size).member("xxh3", hex64(u.xxh3)).end_object();
    w.end_array();
    w.key("deleted_shards");
    write_deleted_shards(w, deleted);
    w.end_object();
    return w.str() + "\n";
}

SplitJournal SplitJournal::parse(const std::string& text, const std::string& file) {
    JsonDocument doc(text, file);
    auto root = doc.root_object();
    auto need = [&](simdjson::dom::object o, const char* key) {
        auto e = json_field(o, key);
        if (!e) throw bad_input(file, std::string("lacks '") + key + "'");
        return *e;
    };
    auto hex = [&](simdjson::dom::element e, const char* what) {
        uint64_t v;
        if (!parse_hex64(json_to_string(e, file, what), &v)) throw bad_input(file, std::string(what) + " is not 16 hex digits");
        return v;
    };
    SplitJournal j;
    j.fingerprint = json_to_string(need(root, "fingerprint"), file, "fingerprint");
    for (auto el : json_to_array(need(root, "done"), file, "done")) {
        auto o = json_to_object(el, file, "done entry");
        j.done.push_back({json_to_string(need(o, "unit"), file, "unit"), json_to_string(need(o, "file"), file, "file"),
                          json_to_uint(need(o, "size"), file, "size"), hex(need(o, "xxh3"), "xxh3")});
    }
    j.deleted = parse_deleted_shards(json_to_array(need(root, "deleted_shards"), file, "deleted_shards"), file);
    return j;
}

std::optional<SplitJournal> read_journal(const std::string& out_dir, std::string* problem) {
    const std::string path = join_path(out_dir, k_journal_file);
    if (!path_exists(path)) return std::nullopt;
    try {
        return SplitJournal::parse(read_text_file(path), path);
    } catch (const Error& e) {
        *problem = e.what();
        return std::nullopt;
    }
}

void write_journal(const std::string& out_dir, const SplitJournal& j) {
    write_file_atomic(join_path(out_dir, k_journal_file), j.to_json());
}

} // namespace rabbit
