"""Item-based k-nearest-neighbour baseline."""

from lmrec.models.baselines.itemknn._config import ItemKNNConfig
from lmrec.models.baselines.itemknn._model import ItemKNNRecommender, item_similarities

__all__ = ["ItemKNNConfig", "ItemKNNRecommender", "item_similarities"]
