"""Earlier shipped gencodec models, decode-only: ``weights/<arch>-<model id>.safetensors.xz`` and
their cards. gencodec finds this folder by the package's name (``gencodec.models.zoo``), without
importing it; nothing here is code to run."""
