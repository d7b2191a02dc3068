// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/sp_tokenizer.h"

#include "common/error.h"
#include "common/json_read.h"

#include <sentencepiece_processor.h>

namespace rabbit {

SpTokenizer::~SpTokenizer() = default;

std::unique_ptr<SpTokenizer> SpTokenizer::load(const std::string& path, const std::optional<std::string>& config_json,
                                               const std::string& config_path) {
    auto tok = std::unique_ptr<SpTokenizer>(new SpTokenizer());
    tok->path_ = path;
    tok->sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = tok->sp_->Load(path);
    if (!status.ok()) throw bad_input(path, "is not a SentencePiece model: " + status.ToString());
    if (config_json) {
        JsonDocument doc(*config_json, config_path);
        auto c = doc.root_object();
        if (auto b = json_field(c, "add_bos_token"); b && !b->is_null()) tok->add_bos_ = json_to_bool(*b, config_path, "add_bos_token");
        if (auto e = json_field(c, "add_eos_token"); e && !e->is_null()) tok->add_eos_ = json_to_bool(*e, config_path, "add_eos_token");
    }
    return tok;
}

std::vector<int32_t> SpTokenizer::encode(std::string_view text, bool add_special) const {
    std::vector<int> ids;
    const auto status = sp_->Encode(text, &ids);
    if (!status.ok()) throw Error(ExitCode::internal, "SentencePiece encode failed: " + status.ToString());
    std::vector<int32_t> out;
    if (add_special && add_bos_ && sp_->bos_id() >= 0) out.push_back(sp_->bos_id());
    out.insert(out.end(), ids.begin(), ids.end());
    if (add_special && add_eos_ && sp_->eos_id() >= 0) out.push_back(sp_->eos_id());
    return out;
}

std::string SpTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
    std::vector<int> keep;
    for (int32_t id : ids) {
        if (id < 0 || id >= sp_->GetPieceSize()) continue;
        if (skip_special && is_special(id)) continue;
        keep.push_back(id);
    }
    std::string text;
    const auto status = sp_->Decode(keep, &text);
    if (!status.ok()) throw Error(ExitCode::internal, "SentencePiece decode failed: " + status.ToString());
    return text;
}

std::string SpTokenizer::piece(int32_t id) const {
    if (id < 0 || id >= sp_->GetPieceSize()) return {};
    return sp_->IdToPiece(id);
}

std::optional<int32_t> SpTokenizer::token_id(std::string_view piece) const {
    const int id = sp_->PieceToId(piece);
    if (id == sp_->unk_id() && piece != sp_->IdToPiece(sp_->unk_id())) return std::nullopt;
    return id;
}

bool SpTokenizer::is_special(int32_t id) const { return sp_->IsControl(id) || sp_->IsUnknown(id); }

size_t SpTokenizer::vocab_size() const { return size_t(sp_->GetPieceSize()); }

} // namespace rabbit
