"""The classic KubeCluster quickstart, run on kubedask: only the import line and the resources differ.

The resources are sized for the local cluster's single 2-core node; on a real cluster use the
classic values (memory 4G, 1 CPU per worker).
"""

from kubedask import KubeCluster, make_pod_spec

pod_spec = make_pod_spec(
    image="ghcr.io/dask/dask:latest",
    memory_limit="512M",
    memory_request="512M",
    cpu_limit=1,
    cpu_request="100m",
)

cluster = KubeCluster(pod_spec)

cluster.scale(10)  # specify number of workers explicitly
cluster.scale(2)  # ... and back down: this machine has two cores
cluster.adapt(minimum=1, maximum=4)  # or dynamically scale based on current workload

from dask.distributed import Client
import dask.array as da

# Connect Dask to the cluster
client = Client(cluster)

# Create a large array and calculate the mean
array = da.ones((1000, 1000, 1000))
print(array.mean().compute())  # Should print 1.0
print("dashboard:", cluster.dashboard_link)

client.close()
cluster.close()
