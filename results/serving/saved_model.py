"""The exported SavedModel's signatures, and how to call them.

``serve`` takes decoded images (float32 ``[N, size, size, C]`` in ``[0, 255]``), as
``model.keras`` does; ``serve_bytes`` takes what a user has, encoded image files (a batch of
``tf.string``: JPEG or PNG bytes, any size, gray or RGB), and decodes and resizes them in
the graph with :func:`pneumo_core.data.decode.encoded_to_pixels`, the very function that
made the training, validation and test pixels. Both return the probability of the positive
class, shape ``[N, 1]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["BYTES_SIGNATURE", "SIGNATURES", "serving_examples", "write_saved_model"]

BYTES_SIGNATURE = "serve_bytes"
#: Signature name -> what it takes and returns (quoted in the model card).
SIGNATURES = {
    "serve": "float32 [N, size, size, channels] in [0, 255] -> probability [N, 1]",
    BYTES_SIGNATURE: (
        "string [N] (input 'image_bytes'): encoded JPEG or PNG files, any size, gray or RGB "
        "-> {'probability': [N, 1]}; decoding and resizing happen in the graph"
    ),
}


def write_saved_model(model: Any, path: str | Path, input_spec: dict[str, Any]) -> None:
    """Writes ``model`` as a TensorFlow SavedModel with the ``serve`` and ``serve_bytes``
    signatures (``serve`` is also ``serving_default``).

    Args:
        model: The Keras model (float images in ``[0, 255]``).
        path: The SavedModel folder to write (must not exist).
        input_spec: The card's ``input`` (``size``, ``channels``, ``aspect``).
    """
    import keras
    import tensorflow as tf

    from pneumo_core.data.decode import encoded_to_pixels

    size, channels, aspect = input_spec["size"], input_spec["channels"], input_spec["aspect"]
    archive = keras.export.ExportArchive()
    archive.track_and_add_endpoint(
        "serve", model, [tf.TensorSpec([None, size, size, channels], tf.float32, name="image")]
    )

    def from_bytes(encoded):
        pixels = tf.map_fn(
            lambda one: encoded_to_pixels(one, size, channels, aspect),
            encoded,
            fn_output_signature=tf.TensorSpec([size, size, channels], tf.uint8),
        )
        return {"probability": model(tf.cast(pixels, tf.float32), training=False)}

    archive.add_endpoint(
        BYTES_SIGNATURE, from_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]
    )
    archive.write_out(str(path), verbose=False)


def serving_examples(folder_name: str = "model") -> dict[str, str]:
    """Runnable examples of calling the exported model (quoted in the model card)."""
    return {
        "python": (
            "import tensorflow as tf\n"
            f"served = tf.saved_model.load('{folder_name}/saved_model')\n"
            "files = [open(p, 'rb').read() for p in ['a.jpeg', 'b.png']]\n"
            f"probability = served.signatures['{BYTES_SIGNATURE}']"
            "(image_bytes=tf.constant(files))['probability'][:, 0].numpy()\n"
            "label = probability >= THRESHOLD  # threshold.value in this card"
        ),
        "tf_serving": (
            "docker run -p 8501:8501 -v $PWD/" + folder_name + "/saved_model:/models/pneumo/1 "
            "-e MODEL_NAME=pneumo tensorflow/serving"
        ),
        "curl": (
            "curl -s http://localhost:8501/v1/models/pneumo:predict -d "
            '"{\\"signature_name\\": \\"' + BYTES_SIGNATURE + '\\", \\"instances\\": '
            '[{\\"b64\\": \\"$(base64 -w0 image.jpeg)\\"}]}"'
        ),
    }
