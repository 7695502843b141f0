"""The t2 time-series transformer (Keras, via tf-keras so TF Model Optimization works).

Architecture after Allam & McEwen (2021): 1x1 convolution embedding with ReLU,
fixed sinusoidal positional encoding, post-LayerNorm transformer blocks
(multi-head self-attention and a ReLU feed-forward, each with dropout and a
residual), global average pooling over time, dropout and a softmax over the 14
classes. Sizes come from ``conf/model.yaml``.

Training-only: importing this module imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from fink_t2.scoring.classes import N_CLASSES


@dataclass(frozen=True)
class ModelConfig:
    """Transformer sizes (the published t2: 32 wide, 16 heads, ff 128, 1 block, dropout 0.1)."""

    d_model: int = 32
    num_heads: int = 16
    ff_dim: int = 128
    num_blocks: int = 1
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)

    def __post_init__(self) -> None:
        if self.d_model < 1 or self.num_heads < 1 or self.ff_dim < 1 or self.num_blocks < 1:
            raise ValueError("d_model, num_heads, ff_dim and num_blocks must be >= 1")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of num_heads ({self.num_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")


def positional_encoding(n_steps: int, d_model: int) -> np.ndarray:
    """Fixed sinusoidal encoding (n_steps, d_model): sin on even, cos on odd channels."""
    position = np.arange(n_steps)[:, None]
    rate = 1.0 / np.power(10000.0, (2 * (np.arange(d_model)[None, :] // 2)) / d_model)
    angle = position * rate
    encoding = np.zeros((n_steps, d_model), dtype=np.float32)
    encoding[:, 0::2] = np.sin(angle[:, 0::2])
    encoding[:, 1::2] = np.cos(angle[:, 1::2])
    return encoding


def _positional_encoding_layer():
    """A Keras layer adding the fixed encoding; defined lazily so importing needs no TF."""
    import tf_keras as keras

    @keras.utils.register_keras_serializable(package="fink_t2")
    class PositionalEncoding(keras.layers.Layer):
        """Adds the fixed sinusoidal encoding (no scaling, no weights)."""

        def build(self, input_shape):
            self.encoding = positional_encoding(int(input_shape[1]), int(input_shape[2]))
            super().build(input_shape)

        def call(self, inputs):
            return inputs + self.encoding

    return PositionalEncoding


def custom_objects() -> dict:
    """Objects needed to load a saved t2 Keras file."""
    layer = _positional_encoding_layer()
    return {"PositionalEncoding": layer, "fink_t2>PositionalEncoding": layer}


def build_model(n_steps: int, n_bands: int = 2, config: ModelConfig | None = None, seed: int | None = None):
    """A compiled-ready (uncompiled) Keras t2 for inputs (batch, n_steps, n_bands)."""
    import tf_keras as keras

    config = config or ModelConfig()
    if seed is not None:
        keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input(shape=(n_steps, n_bands), name="light_curve")
    x = layers.Conv1D(config.d_model, kernel_size=1, activation="relu", name="embedding")(inputs)
    x = _positional_encoding_layer()(name="positional_encoding")(x)
    for i in range(config.num_blocks):
        attention = layers.MultiHeadAttention(
            num_heads=config.num_heads, key_dim=config.d_model // config.num_heads, name=f"attention_{i}"
        )(x, x)
        attention = layers.Dropout(config.dropout, name=f"attention_dropout_{i}")(attention)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"attention_norm_{i}")(x + attention)
        ff = layers.Dense(config.ff_dim, activation="relu", name=f"ff_in_{i}")(x)
        ff = layers.Dense(config.d_model, name=f"ff_out_{i}")(ff)
        ff = layers.Dropout(config.dropout, name=f"ff_dropout_{i}")(ff)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"ff_norm_{i}")(x + ff)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    x = layers.Dropout(config.dropout, name="head_dropout")(x)
    outputs = layers.Dense(N_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="t2")
