"""DMQN: Deep Multiple Quantization Network (Wei, Liu, Xie, SIGIR'25)."""
import tensorflow as tf

from tfrec.configs.dmqn import DMQNConfig
from tfrec.data.spec import HIST_LENGTH, SECONDS_PER_DAY
from tfrec.layers.candidate_group_attention import CandidateGroupAttention
from tfrec.layers.hstu import HSTU
from tfrec.layers.id_embedding import IdEmbedding
from tfrec.layers.multi_codebook_quantizer import MultiCodebookQuantizer
from tfrec.layers.top_k_groups import TopKGroups
from tfrec.models.base import CTRModel
from tfrec.registry import register


@register
class DMQN(CTRModel):
    """DMQN over the whole raw lifelong behavior sequence, end to end.

    User tower (candidate-independent, cached per user, paper sec. 2.5):
      behavior tokens ``e_i = E_item(item) + E_type(type) (+ behavior features)`` for all L
      behaviors -> MultiCodebookQuantizer (MCQM, eqs. 3-10): N codeword sequences of W pooled
      interest clusters -> each sequence ordered by its codewords' newest member behavior
      (TopKGroups with k = W, oldest -> newest, empty codewords first) -> HSTU over each
      codebook's sequence (ICIM, eqs. 11-13; one HSTU shared by the N codebooks, its relative
      position + time bias is the paper's ``bias^p``).
    Score: CandidateGroupAttention (CTAM, sec. 2.4: the candidate against all N x W codeword
      states, empty codewords masked, no group-match prior), the shared short-term DIN branch,
      the user profile -> MLP -> sigmoid.

    User state: ``user_embedding`` ``[B, d]``, ``recent_behaviors`` ``[B, S, d_item]``,
    ``recent_mask`` ``[B, S]``, ``codeword_states`` ``[B, N*W, d_item]``, ``codeword_mask`` ``[B, N*W]``.

    Ablations (DMQNConfig): ``use_icim=False`` (DMQN-simple, Table 3), N, W, ``estimator``,
    ``codeword_order``; our additions ``behavior_age`` (``E_time(bucket(t_req - t_i))`` added to
    each behavior token) and ``codeword_count`` (``W_c log1p(count)`` added to each pooled codeword).
    """

    config_class = DMQNConfig
    model_name = "dmqn"

    def __init__(self, spec, config: DMQNConfig = DMQNConfig(), **kwargs):
        super().__init__(spec, config, **kwargs)
        n, w = config.num_codebooks, config.codebook_size
        self.quantizer = MultiCodebookQuantizer(n, w, estimator=config.estimator, temperature=config.temperature,
                                                scores=config.scores, name="quantizer")
        self.codeword_order = TopKGroups(w, name="codeword_order") if config.codeword_order == "recency" else None
        self.hstu = (HSTU(config.hstu_layers, config.hstu_heads, config.embedding_dim, w, config.time_bucket_days,
                          identity_init=config.icim_identity_init, name="hstu") if config.use_icim else None)
        d_item = self.item_embedding.output_dim
        # ours, off in the paper-exact config: the behavior's age and the codeword's size
        self.age_embedding = (IdEmbedding(len(config.time_bucket_days) + 1, d_item, name="behavior_age_embedding")
                              if config.behavior_age else None)
        self.count_projection = (tf.keras.layers.Dense(d_item, name="codeword_count_projection")
                                 if config.codeword_count else None)
        self.cluster_attention = CandidateGroupAttention(config.embedding_dim, match_prior=False, name="cluster_attention")

    @property
    def recent_length(self) -> int:
        return self.config.short_term_length

    def quantizer_inputs(self, features):
        """The quantizer's input for a features batch: every behavior token and its mask/timestamp."""
        hist = self.padded_history(features)
        valid = tf.range(tf.shape(hist["hist_item_id"])[1])[None, :] < hist[HIST_LENGTH][:, None]
        tokens = self.behavior_tokens(hist)
        if self.age_embedding is not None:
            age = tf.cast(tf.cast(features["request_timestamp"], tf.int64)[:, None]
                          - tf.cast(hist["hist_timestamp"], tf.int64), tf.float32) / SECONDS_PER_DAY
            tokens += self.age_embedding(tf.raw_ops.Bucketize(input=age, boundaries=list(self.config.time_bucket_days)))
        return {"behaviors": tokens, "mask": valid, "timestamp": hist["hist_timestamp"]}, hist

    def encode_user(self, features, training=None):
        inputs, hist = self.quantizer_inputs(features)
        q = self.quantizer(inputs, training=training)
        n, w = self.config.num_codebooks, self.config.codebook_size
        d_item = self.item_embedding.output_dim
        b = tf.shape(q["clusters"])[0]
        # the N codebooks become N independent sequences of W codewords
        x = q["clusters"]
        if self.count_projection is not None:  # [B, N, W] -> [B, N, W, d_item]
            x += self.count_projection(tf.math.log1p(q["count"])[..., None]) * tf.cast(q["mask"], x.dtype)[..., None]
        x = tf.reshape(x, [b * n, w, d_item])
        mask = tf.reshape(q["mask"], [b * n, w])
        ts = tf.reshape(q["max_timestamp"], [b * n, w])
        if self.codeword_order is not None:
            top = self.codeword_order({"max_timestamp": ts, "mask": mask, "values": {"x": x}})
            x, mask, ts = top["x"], top["mask"], top["max_timestamp"]
        if self.hstu is not None:
            x = self.hstu({"x": x, "mask": mask, "timestamp": ts}, training=training)
        mask = tf.cast(mask, x.dtype)
        return {"user_embedding": self.encode_profile(features), **self.encode_recent(hist),
                "codeword_states": tf.reshape(x * mask[..., None], [b, n * w, d_item]),
                "codeword_mask": tf.reshape(mask, [b, n * w])}

    def head_inputs(self, user_state, candidate_item_id, item_emb, training=None):
        return [self.cluster_attention({"query": item_emb, "keys": user_state["codeword_states"],
                                        "mask": user_state["codeword_mask"]})]

    def training_callbacks(self, train_ds, out_dir):
        from tfrec.callbacks.codebook_health import CodebookHealth

        c = self.config
        return [CodebookHealth(train_ds, batches=c.health_batches, json_path=f"{out_dir}/codebook_health.json",
                               temperature_decay=c.temperature_decay, temperature_min=c.temperature_min,
                               dead_code_reset=c.dead_code_reset)]
